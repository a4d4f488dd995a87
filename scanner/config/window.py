"""`--window HH:MM-HH:MM` / `[scan] window`: a daily window of local time, as a config value.
The scan's quota module decides what to do with it; this is only the value and its arithmetic."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time

from scanner.errors import ConfigError, echo

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
            raise ConfigError(f"--window must be HH:MM-HH:MM, e.g. 01:00-06:00 (got {echo(text)})")
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
