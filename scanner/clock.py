"""Time as a dependency: the limiter and retries take a Clock so tests can fake it.

Leaf module: imports nothing from `scanner`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def wall(self) -> datetime:
        """The wall time now, aware (local time zone): windows and daily caps."""
        ...


class MonotonicClock:
    """The real clock: time.monotonic, the local wall time and anyio.sleep."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now().astimezone()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


def span(seconds: float) -> str:
    """`3 h 05 min`, `12 min`, `40 s`."""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"
