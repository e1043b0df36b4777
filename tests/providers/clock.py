"""A virtual clock: ``sleep`` records the wait and moves time forward instantly."""

from __future__ import annotations

import anyio.lowlevel


class VirtualTime:
    """Inject ``clock`` and ``sleep``; read ``sleeps`` to assert the schedule."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds
        await anyio.lowlevel.checkpoint()
