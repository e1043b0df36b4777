"""Engine.map: stage actors, bounded streams, ordering, back-pressure, failures in the stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from tests.engine.conftest import ScriptedModels
from tlm.engine import Engine
from tlm.errors import InputInvalid
from tlm.providers.base import ChatRequest

EngineFactory = Callable[..., Engine]


def echo_title(request: ChatRequest) -> str:
    posting = request.messages[-1].content.rsplit(": ", 1)[-1]
    return json.dumps({"title": posting})


async def test_map_streams_every_input_and_keeps_failures_in_the_stream(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = echo_title
    inputs = [{"posting": f"job {i}"} for i in range(50)]
    inputs[7] = {"posting": ""}  # violates non_empty_text
    async with engine_factory(cache=False) as engine:
        async with engine.map("title_extraction", inputs, max_in_flight=8) as results:
            collected = [r async for r in results]
    assert len(collected) == 50
    by_index = {r.index: r for r in collected if r.index is not None}
    assert sorted(by_index) == list(range(50))
    assert isinstance(by_index[7].error, InputInvalid)
    assert by_index[7].status == "failed"
    with pytest.raises(InputInvalid):
        by_index[7].unwrap()
    assert by_index[3].output == {"title": "job 3"}
    assert models.calls() == 49


async def test_map_ordered_yields_in_input_order_despite_completion_order(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    async def reversed_latency(request: ChatRequest) -> str:
        number = int(request.messages[-1].content.rsplit(" ", 1)[-1])
        await anyio.sleep(0.001 * (10 - number))
        return json.dumps({"title": str(number)})

    models.handlers["*"] = reversed_latency
    inputs = [{"posting": f"job {i}"} for i in range(10)]
    async with engine_factory(cache=False) as engine:
        async with engine.map(
            "title_extraction", inputs, ordered=True, max_in_flight=10
        ) as results:
            outputs = [r.output["title"] async for r in results]
    assert outputs == [str(i) for i in range(10)]


async def test_a_blocked_model_stage_holds_back_the_producer(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    release = anyio.Event()
    entered = 0

    async def gated(request: ChatRequest) -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return json.dumps({"title": "x"})

    models.handlers["*"] = gated
    pulled = 0

    async def endless() -> AsyncIterator[dict[str, str]]:
        nonlocal pulled
        while True:
            pulled += 1
            yield {"posting": f"job {pulled}"}

    max_in_flight = 4
    async with engine_factory(cache=False) as engine:
        async with engine.map(
            "title_extraction", endless(), max_in_flight=max_in_flight
        ) as results:
            async with anyio.create_task_group() as tg:

                async def consume() -> None:
                    async for _ in results:
                        pass

                tg.start_soon(consume)
                # Wait (without sleeping a fixed time) until every admitted job is at the model.
                while entered < max_in_flight:
                    await anyio.wait_all_tasks_blocked()
                await anyio.wait_all_tasks_blocked()
                stats = results.statistics()
                # Nothing beyond the admission bound was taken from the endless source.
                assert results.fed == max_in_flight
                assert pulled <= max_in_flight + 1
                assert entered == max_in_flight
                assert stats["results"].current_buffer_used == 0  # all at the model
                assert stats["results"].tasks_waiting_send == 0
                tg.cancel_scope.cancel()
    assert not release.is_set()


async def test_leaving_a_map_early_cancels_its_actors_and_leaks_no_task(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    import asyncio

    async def first_answers_rest_hang(request: ChatRequest) -> str:
        if models.calls() > 1:
            await anyio.sleep_forever()
        return json.dumps({"title": "x"})

    models.handlers["*"] = first_answers_rest_hang
    inputs = [{"posting": f"job {i}"} for i in range(1_000)]
    async with engine_factory(cache=False) as engine:
        before = len(asyncio.all_tasks())
        async with engine.map("title_extraction", inputs, max_in_flight=8) as results:
            first = await results.__anext__()
        after = len(asyncio.all_tasks())
    assert first.error is None
    assert after == before
    assert len(models.cancelled) == models.calls() - 1  # every call in flight was cancelled
    assert models.calls() <= 8 + 1
