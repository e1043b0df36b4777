"""The ``tlm`` command line.

Each module listed in :data:`COMMAND_MODULES` exposes ``COMMANDS``, a tuple of click commands; the
group imports a module only when one of its commands is invoked or listed.
"""

from __future__ import annotations

import importlib

import click

__all__ = ("main", "COMMAND_MODULES")

COMMAND_MODULES: dict[str, str] = {
    # command name -> module that defines it
    "init": "tlm.cli.init",
    "create-task": "tlm.cli.tasks",
    "validate-task": "tlm.cli.tasks",
    "list-tasks": "tlm.cli.tasks",
    "show-task": "tlm.cli.tasks",
    "execute": "tlm.cli.run",
    "batch": "tlm.cli.batch",
    "review": "tlm.cli.review",
    "executions": "tlm.cli.executions",
    "export": "tlm.cli.executions",
    "feedback": "tlm.cli.executions",
    "run-workflow": "tlm.cli.workflow",
    "workflow-runs": "tlm.cli.workflow",
    "codegen": "tlm.cli.workflow",
    "bench": "tlm.cli.bench",
    "analyze": "tlm.cli.learn",
    "update-rankings": "tlm.cli.learn",
    "suggest-prompts": "tlm.cli.learn",
    "eval": "tlm.cli.evaluate",
    "rollout": "tlm.cli.rollout",
    "ui": "tlm.cli.ui",
    "db": "tlm.cli.db",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use, so ``tlm --help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(module_name)
        for command in module.COMMANDS:
            if command.name == cmd_name:
                return command  # type: ignore[no-any-return]
        return None


@click.group(cls=_LazyGroup)
@click.version_option(package_name="tlm", prog_name="tlm")
def main() -> None:
    """TLM: declare LLM tasks once; execute, verify, log and improve them."""
