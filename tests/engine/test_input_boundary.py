"""Issue 12 item 7: inputs no JSON consumer can carry are refused at the boundary and recorded.

Nested 10,000 deep, circular, lone surrogates, NaN, non-string keys, over-long integers and other
objects each fail as :class:`InputNotJSON` (a ``TLMError``) naming the JSON path, are recorded as
failed executions in the store, leave no root span open, and call no model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import InputInvalid, InputNotJSON, TLMError
from tlm.store import ExecutionStore
from tlm.telemetry.processor import ExecutionRecordProcessor
from tlm.telemetry.records import ExecutionRecord


class _Records:
    """A record sink beside the store, to watch the processor's open executions."""

    def __init__(self) -> None:
        self.records: list[ExecutionRecord] = []

    def write(self, record: ExecutionRecord, /) -> None:
        self.records.append(record)

    def flush(self, timeout: float | None = None) -> bool:
        return True


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {"posting": "Chef", "context": {}}
    value["context"]["loop"] = value
    return value


BAD_INPUTS: list[tuple[str, Any, str, str]] = [
    ("deep", {"posting": "p", "context": _nested(10_000)}, "$.context[0][0][0]", "nested deeper"),
    ("circular", _circular(), "$.context.loop", "circular reference"),
    ("surrogate", {"posting": "Chef \ud800 wanted"}, "$.posting", "lone surrogate"),
    ("surrogate key", {"posting": "p", "\udcff": "x"}, "$", "lone surrogate"),
    ("nan", {"posting": "p", "score": float("nan")}, "$.score", "not a JSON number"),
    ("infinity", {"posting": "p", "n": [1.0, float("-inf")]}, "$.n[1]", "not a JSON number"),
    ("int key", {"posting": "p", 1: "one"}, "$", "keys are strings"),
    ("long int", {"posting": "p", "n": 10**5000}, "$.n", "digits"),
    ("set", {"posting": "p", "tags": {"a"}}, "$.tags", "a set is not JSON"),
]


def _engine(
    tmp_path: Path, models: ScriptedModels, **config: Any
) -> tuple[Engine, ExecutionRecordProcessor, _Records]:
    """An engine recording to the store, and a second record processor to watch."""
    settings: dict[str, Any] = {"data_dir": tmp_path / "data", "models": MODELS}
    settings.update(config)
    sink = _Records()
    processor = ExecutionRecordProcessor(sink)
    engine = Engine(
        EngineConfig(**settings),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
        span_processors=[processor],
    )
    return engine, processor, sink


@pytest.mark.parametrize("cache", [True, False])
async def test_unrepresentable_inputs_fail_clearly_and_are_recorded(
    tmp_path: Path, models: ScriptedModels, cache: bool
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    engine, processor, sink = _engine(tmp_path, models, cache=cache)
    failed: dict[str, str] = {}
    async with engine:
        for _ in range(5):  # repeated: nothing accumulates
            for name, value, path, message in BAD_INPUTS:
                with pytest.raises(InputNotJSON) as caught:
                    await engine.execute("title_extraction", value)
                error = caught.value
                assert isinstance(error, InputInvalid)
                assert isinstance(error, TLMError)
                (problem,) = error.problems
                assert problem.path.startswith(path), (name, problem)
                assert message in problem.message, (name, problem)
                assert error.execution_id is not None
                failed[name] = error.execution_id
        ok = await engine.execute("title_extraction", {"posting": "Chef wanted"})
        engine.flush()
        assert processor.open_executions == 0
    assert models.calls() == 1  # only the good input reached a model
    assert len(sink.records) == 5 * len(BAD_INPUTS) + 1
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        for name, execution_id in failed.items():
            record = store.get(execution_id)
            assert record is not None, name
            assert record.status == "error"
            assert record.error is not None
            assert record.error.type == "InputNotJSON"
            assert "invalid input" in record.error.message
        good = store.get(ok.execution_id)
    assert good is not None
    assert good.status == "ok"


async def test_a_stand_in_of_the_bad_input_is_recorded(
    tmp_path: Path, models: ScriptedModels
) -> None:
    engine, _, _ = _engine(tmp_path, models)
    async with engine:
        with pytest.raises(InputNotJSON) as caught:
            await engine.execute("title_extraction", {"posting": "a\ud800b", "n": float("nan")})
        engine.flush()
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        record = store.get(caught.value.execution_id or "")
    assert record is not None
    assert record.input == {"posting": "a\\ud800b", "n": "nan"}


async def test_map_records_bad_inputs_and_goes_on(tmp_path: Path, models: ScriptedModels) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    engine, processor, sink = _engine(tmp_path, models)
    inputs: list[Any] = [
        BAD_INPUTS[i % len(BAD_INPUTS)][1] if i % 3 == 0 else {"posting": "p"} for i in range(60)
    ]
    async with engine:
        async with engine.map("title_extraction", inputs, max_in_flight=8) as results:
            outcomes = [result async for result in results]
        engine.flush()
        assert processor.open_executions == 0
    bad = [r for r in outcomes if r.error is not None]
    assert len(bad) == 20
    assert all(isinstance(r.error, InputNotJSON) for r in bad)
    assert len(sink.records) == 60
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        assert store.count() == 60


def test_the_depth_limit_leaves_room_below_the_recursion_limit() -> None:
    from tlm.engine.json_values import MAX_DEPTH, json_value_problems

    assert MAX_DEPTH * 4 < sys.getrecursionlimit()
    assert json_value_problems({"a": _nested(MAX_DEPTH - 1)}) == []
    (problem,) = json_value_problems({"a": _nested(MAX_DEPTH)})
    assert problem.path.startswith("$.a[0]")
    shared = [1, 2]
    assert json_value_problems({"x": shared, "y": shared, "z": (True, None, 1.5)}) == []
