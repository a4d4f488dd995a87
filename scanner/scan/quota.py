"""Quotas over time: `[scan] daily_cap` (billed units per UTC day) and `--window HH:MM-HH:MM`
(audit only inside a daily window of local time): the arithmetic on a clock that gives wall
time, and the waits the runner makes on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio

from scanner.clock import Clock, span
from scanner.config.window import Window


def until_utc_midnight(now: datetime) -> float:
    """Seconds until the next UTC day (`now` aware)."""
    n = now.astimezone(UTC)
    tomorrow = (n + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - n).total_seconds()


def remaining_images(cap_units: int, billed_images: int, scenes: int | None) -> int:
    """Images that may still be sent today under a cap of `cap_units` (a unit is an image
    x scene; an image when the scenes are unknown)."""
    per = scenes or 1
    return max(0, (cap_units - billed_images * per) // per)


class Billed(Protocol):
    async def billed_on(self, day: str) -> int: ...


async def wait_for_window(window: Window, clock: Clock, stop: anyio.Event) -> float:
    """Wait (on `clock`) until `window` opens or `stop` is set; the seconds it had to wait for
    the window (0: it was open)."""
    wait = window.opens_in(clock.wall())
    if wait <= 0:
        return 0.0
    async with anyio.create_task_group() as tg:

        async def opened() -> None:
            await clock.sleep(wait)
            tg.cancel_scope.cancel()

        tg.start_soon(opened)
        await stop.wait()
        tg.cancel_scope.cancel()
    return wait


async def close_window(window: Window, clock: Clock) -> str:
    """Return when the open window closes, with what to say about it."""
    await clock.sleep(window.closes_in(clock.wall()))
    opens = window.opens_in(clock.wall() + timedelta(seconds=1)) + 1
    return f"paused at the end of the window {window.text}; it opens in {span(opens)}"


async def daily_allowance(
    store: Billed, cap: int, scenes: int | None, clock: Clock
) -> tuple[int, str]:
    """(images that may still be sent today under `[scan] daily_cap`, what to say when the cap
    is reached)."""
    now = clock.wall().astimezone(UTC)
    billed = await store.billed_on(now.strftime("%Y-%m-%d"))
    note = (
        f"paused at the daily cap of {cap:,} units ({billed * (scenes or 1):,} billed today, "
        f"UTC); the cap resets in {span(until_utc_midnight(now))} (00:00 UTC)"
    )
    return remaining_images(cap, billed, scenes), note
