"""Waiting for live counters: `Changes` wakes whoever waits for a condition on values that
change in place (a scan's progress, the emulator's stats), instead of polling them.

Leaf module: imports nothing from `scanner`.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio


class Changes:
    """Call `changed()` after updating the watched values; `await until(check)` returns once
    `check()` holds (at once if it already does)."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None  # made in the event loop, when first waited on

    def changed(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def until(self, check: Callable[[], bool]) -> None:
        while not check():
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


class Nudge:
    """A wake-up call: `nudge()`; `await wait()` returns at the next nudge, or at once when
    one came since the last wait returned (none is lost between two waits)."""

    def __init__(self) -> None:
        self._count = 0
        self._seen = 0
        self._changes = Changes()

    def nudge(self) -> None:
        self._count += 1
        self._changes.changed()

    async def wait(self) -> None:
        await self._changes.until(lambda: self._count != self._seen)
        self._seen = self._count
