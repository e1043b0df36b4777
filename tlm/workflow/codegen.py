"""``tlm codegen``: typed models of every task's input and output, generated from its JSON Schemas.

One module holds, per task (its latest version), a ``TypedDict`` for the input and one for the
output (nested objects get their own), and a typed :class:`~tlm.workflow.step.TaskRef`::

    class SkillDecompositionInput(TypedDict):
        skill_name: str
        context: NotRequired[str]

    SKILL_DECOMPOSITION: Final = TaskRef[SkillDecompositionInput, SkillDecompositionOutput](
        "skill_decomposition", "1.0.0"
    )

``TypedDict`` is structural, like JSON Schema: a task's output type fits the next step's input type
when it has the keys that input requires. The output is deterministic and ruff-formatted, so CI can
regenerate and fail on a diff (``tlm codegen --check``).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Any

from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.definition.schema import allowed_values

__all__ = ("generate_module", "class_name", "constant_name", "DEFAULT_OUTPUT")

DEFAULT_OUTPUT = "dsl/tasks.py"
_LINE = 100
_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def class_name(text: str) -> str:
    """``job_detail_extraction`` → ``JobDetailExtraction``."""
    parts = re.split(r"[^0-9A-Za-z]+", text)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return name if name and not name[0].isdigit() else f"T{name}"


def constant_name(task_id: str) -> str:
    """``job_detail_extraction`` → ``JOB_DETAIL_EXTRACTION``."""
    name = re.sub(r"[^0-9A-Za-z]+", "_", task_id).strip("_").upper()
    return name if name and not name[0].isdigit() else f"T_{name}"


class _Module:
    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.names: set[str] = set()
        self.uses_any = False
        self.uses_literal = False
        self.uses_never = False
        self.uses_not_required = False

    def unique(self, name: str) -> str:
        candidate, n = name, 2
        while candidate in self.names:
            candidate, n = f"{name}{n}", n + 1
        self.names.add(candidate)
        return candidate

    def type_of_values(self, values: list[Any]) -> str:
        """The Python type allowing exactly ``values`` (``Never`` when nothing is allowed)."""
        if not values:
            self.uses_never = True
            return "Never"
        literals = [_literal(v) for v in values if _is_literal(v)]
        members = []
        if literals:
            self.uses_literal = True
            members.append(f"Literal[{', '.join(dict.fromkeys(literals))}]")
        for value in values:
            if value is None:
                members.append("None")
            elif not _is_literal(value):  # a float, list or object: typing has no literal for it
                members.append(self._type_of_value(value))
        return _union(members)

    def _type_of_value(self, value: Any) -> str:
        if isinstance(value, float):
            return "float"
        self.uses_any = True
        return "list[Any]" if isinstance(value, list) else "dict[str, Any]"

    def type_of(self, schema: Any, name: str) -> str:
        """The Python type for ``schema``; nested objects become classes named ``name``."""
        if not isinstance(schema, Mapping):
            self.uses_any = True
            return "Any"
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                members = [self.type_of(o, f"{name}{i + 1}") for i, o in enumerate(options)]
                return _union(members)
        values = allowed_values(schema)  # enum and const together: both must hold
        if values is not None:
            return self.type_of_values(values)
        declared = schema.get("type")
        types = [declared] if isinstance(declared, str) else list(declared or [])
        if not types:
            if "properties" in schema:
                types = ["object"]
            elif "items" in schema:
                types = ["array"]
            else:
                self.uses_any = True
                return "Any"
        members = []
        for kind in types:
            if kind in _SCALARS:
                members.append(_SCALARS[kind])
            elif kind == "array":
                members.append(f"list[{self.type_of(schema.get('items', {}), f'{name}Item')}]")
            elif kind == "object":
                members.append(self.object_type(schema, name))
            else:
                self.uses_any = True
                members.append("Any")
        return _union(members)

    def object_type(self, schema: Mapping[str, Any], name: str, doc: str | None = None) -> str:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            self.uses_any = True
            return "dict[str, Any]"
        cls = self.unique(name)
        required = set(schema.get("required", ()))
        fields = []
        for prop, sub in properties.items():
            annotation = self.type_of(sub, cls + class_name(prop))
            if prop not in required:
                self.uses_not_required = True
                annotation = f"NotRequired[{annotation}]"
            fields.append((prop, annotation))
        if all(p.isidentifier() and not keyword.iskeyword(p) for p, _ in fields):
            lines = [f"class {cls}(TypedDict):"]
            if doc:
                lines.append(f'    """{doc}"""')
                lines.append("")
            lines += [_fit(f"    {p}: ", a, "") for p, a in fields]
        else:
            lines = [f'{cls} = TypedDict("{cls}", {{']
            lines += [f"    {_literal(p)}: {a}," for p, a in fields]
            lines.append("})")
        self.blocks.append("\n".join(lines))
        return cls


def _is_literal(value: Any) -> bool:
    """Whether ``typing.Literal`` can hold ``value`` (a string, an integer or a boolean)."""
    return isinstance(value, str | int)


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _union(members: list[str]) -> str:
    unique = list(dict.fromkeys(members))
    return " | ".join(unique) if unique else "Any"


def _fit(head: str, body: str, tail: str) -> str:
    """``head + body + tail`` on one line, or split inside the outermost brackets (ruff style)."""
    line = head + body + tail
    if len(line) <= _LINE or "[" not in body:
        return line
    open_at = body.index("[")
    inner, outer = body[open_at + 1 : -1], body[: open_at + 1]
    indent = " " * (len(head) - len(head.lstrip()) + 4)
    if len(indent + inner) <= _LINE:
        return f"{head}{outer}\n{indent}{inner}\n{indent[4:]}]{tail}"
    items = [i.strip() for i in _split_top(inner)]
    return f"{head}{outer}\n" + "".join(f"{indent}{i},\n" for i in items) + f"{indent[4:]}]{tail}"


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _task_blocks(module: _Module, definition: TaskDefinition) -> str:
    base = class_name(definition.id)
    doc_in = f"Input of ``{definition.id}`` {definition.version}."
    doc_out = f"Output of ``{definition.id}`` {definition.version}."
    in_type = module.object_type(definition.input.schema, f"{base}Input", doc_in)
    out_type = module.object_type(definition.output.schema, f"{base}Output", doc_out)
    const = constant_name(definition.id)
    call = f'("{definition.id}", "{definition.version}")'
    line = f"{const}: Final = TaskRef[{in_type}, {out_type}]{call}"
    if len(line) <= _LINE:
        return line
    head = f"{const}: Final = TaskRef[{in_type}, {out_type}]("
    if len(head) <= _LINE:
        return f'{head}\n    "{definition.id}", "{definition.version}"\n)'
    return f"{const}: Final = TaskRef[\n    {in_type}, {out_type}\n]{call}"


def generate_module(registry: DefinitionRegistry) -> str:
    """The source of the typed-models module for every task in ``registry`` (latest versions)."""
    module = _Module()
    refs = [_task_blocks(module, registry.get(task_id)) for task_id in sorted(registry.task_ids())]
    typing_names = ["Final", "TypedDict"]
    if module.uses_any:
        typing_names.append("Any")
    if module.uses_literal:
        typing_names.append("Literal")
    if module.uses_never:
        typing_names.append("Never")
    if module.uses_not_required:
        typing_names.append("NotRequired")
    header = (
        '"""Typed inputs and outputs of the task definitions.\n\n'
        "Generated by ``tlm codegen`` from the definitions' JSON Schemas; do not edit by hand.\n"
        '"""\n\n'
        f"from typing import {', '.join(sorted(typing_names))}\n\n"
        "from tlm.workflow import TaskRef\n\n"
    )
    exported = [constant_name(t) for t in sorted(registry.task_ids())] + sorted(module.names)
    all_block = "__all__ = (\n" + "".join(f'    "{n}",\n' for n in exported) + ")\n"
    body = "\n\n\n".join(module.blocks)
    return header + all_block + "\n\n" + body + "\n\n\n" + "\n\n".join(refs) + "\n"
