"""Resumable batches: a re-run skips the inputs whose execution already succeeded.

An input is done when the store holds a successful record (``status == "ok"``) of the same task
version whose input has the same content hash (:func:`tlm.rollout.references.input_hash`, the
SHA-256 of its canonical JSON). :func:`carry_over` rewrites the output file with one line per done
input -- the previous run's line when it names one of those records, else a line rebuilt from the
record -- and returns their line numbers, so the run executes only the rest and appends their lines.
Identical inputs on several lines each need a record of their own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlm.batch.requests import parse_line
from tlm.rollout.references import input_hash
from tlm.telemetry.records import ExecutionRecord

__all__ = ("carry_over", "input_lines", "record_line", "succeeded_by_input")


def input_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every non-blank line of ``path`` (1-based; blank lines are
    not inputs)."""
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, 1):
            if text.strip():
                yield number, text.rstrip("\n")


def succeeded_by_input(store: Any, task_id: str, version: str) -> dict[str, list[ExecutionRecord]]:
    """The successful records of ``task_id@version``, oldest first, by their input's hash."""
    found: dict[str, list[ExecutionRecord]] = {}
    if store is None:
        return found
    for record in store.iter_query(task_id=task_id, version=version):
        if record.status == "ok":
            found.setdefault(input_hash(record.input), []).append(record)
    return found


def record_line(number: int, record: ExecutionRecord) -> dict[str, Any]:
    """The output line of a successful record (the shape :func:`tlm.batch.run_local_batch`
    writes)."""
    if record.cache_hit:
        status = "cached"
    elif record.fallback is not None:
        status = "fallback"
    elif record.passed is True:
        status = "verified"
    else:
        status = "unverified"
    return {
        "line": number,
        "execution_id": record.execution_id,
        "status": status,
        "output": record.output,
        "error": None,
        "cost_usd": record.performance.cost,
        "models_used": list(record.models_used),
    }


def _previous_lines(path: Path, wanted: set[str]) -> dict[int, str]:
    """The previous output's lines naming a record in ``wanted``, by line number (a torn last
    line after a crash is ignored)."""
    kept: dict[int, str] = {}
    if not path.is_file():
        return kept
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict) and line.get("execution_id") in wanted:
                number = line.get("line")
                if isinstance(number, int) and line.get("error") is None:
                    kept[number] = text.rstrip("\n")
    return kept


def carry_over(
    store: Any,
    task_id: str,
    version: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
) -> set[int]:
    """Rewrite ``output_path`` with a line for every input already done; their line numbers.

    The file is replaced atomically, so a crash here leaves the previous output in place.
    """
    done = succeeded_by_input(store, task_id, version)
    output = Path(output_path)
    previous = _previous_lines(
        output, {r.execution_id for records in done.values() for r in records}
    )
    hash_of = {r.execution_id: key for key, records in done.items() for r in records}
    carried: set[int] = set()
    used: set[str] = set()
    temporary = output.with_name(output.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        if done:
            for number, text in input_lines(input_path):
                parsed = parse_line(text, source=str(input_path), line=number)
                if parsed.error is not None:
                    continue
                key = input_hash(parsed.value)
                candidates = done.get(key)
                if not candidates:
                    continue
                line = previous.get(number)
                chosen_id = None if line is None else json.loads(line)["execution_id"]
                if chosen_id is None or chosen_id in used or hash_of[chosen_id] != key:
                    free = [r for r in candidates if r.execution_id not in used]
                    if not free:
                        continue
                    chosen_id = free[-1].execution_id
                    line = json.dumps(record_line(number, free[-1]), ensure_ascii=False)
                used.add(chosen_id)
                handle.write(f"{line}\n")
                carried.add(number)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, output)
    return carried
