"""Quotas over time: `[scan] daily_cap` (billed units per UTC day) and `--window HH:MM-HH:MM`
(audit only inside a daily window of local time). Pure arithmetic on clock readings; the
runner decides what to do with it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

from scanner.errors import ConfigError

_WINDOW = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Window:
    """A daily window [start, end) of local time; it may span midnight (22:00-06:00)."""

    start: clock_time
    end: clock_time
    text: str

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.match(text.strip())
        if match is None:
            raise ConfigError(f"--window must be HH:MM-HH:MM, e.g. 01:00-06:00 (got {text!r})")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if (h1, m1) == (h2, m2):
            raise ConfigError(f"--window {text!r} is empty (start = end)")
        return cls(clock_time(h1, m1), clock_time(h2, m2), text.strip())

    def _bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The window that is open at `now`, or the next one to open."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in (-1, 0, 1):
            start = datetime.combine((day + timedelta(days=offset)).date(), self.start, now.tzinfo)
            end = datetime.combine(start.date(), self.end, now.tzinfo)
            if end <= start:
                end += timedelta(days=1)
            if now < end:
                return start, end
        raise AssertionError("unreachable: a window opens every day")

    def opens_in(self, now: datetime) -> float:
        """Seconds until the window opens (0 when it is open)."""
        start, _ = self._bounds(now)
        return max(0.0, (start - now).total_seconds())

    def closes_in(self, now: datetime) -> float:
        """Seconds until the open (or next) window closes."""
        _, end = self._bounds(now)
        return (end - now).total_seconds()


def until_utc_midnight(now: datetime) -> float:
    """Seconds until the next UTC day (`now` aware)."""
    n = now.astimezone(UTC)
    tomorrow = (n + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - n).total_seconds()


def span(seconds: float) -> str:
    """`3 h 05 min`, `12 min`, `40 s`."""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


def remaining_images(cap_units: int, billed_images: int, scenes: int | None) -> int:
    """Images that may still be sent today under a cap of `cap_units` (a unit is an image
    x scene; an image when the scenes are unknown)."""
    per = scenes or 1
    return max(0, (cap_units - billed_images * per) // per)
