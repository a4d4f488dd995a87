"""What the terminal shows: durations in the unit that fits them (issue 25, item 5)."""

from __future__ import annotations

import pytest

from scanner.render import duration


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.04, "0.0s"),
        (0.4, "0.4s"),
        (9.96, "10.0s"),
        (42.7, "42s"),
        (245, "4m05s"),
        (3 * 3600 + 7 * 60 + 59, "3h07m"),
        (2 * 86400 + 4 * 3600 + 1, "2d04h"),
        (-3, "0.0s"),
    ],
)
def test_duration_uses_the_unit_that_fits(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown
