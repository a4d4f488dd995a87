"""The progress display: one live line on a terminal (rich), one log line (or JSON event) per
interval otherwise.

`scan_line` fits the terminal's width: the most useful parts first (%, audited, flagged,
failed, rate, ETA), the rest while there is room. The % and ETA appear once the scan's size is
known (listing done) or estimated (the target's last finished scan).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from scanner.cli import logs
from scanner.render import duration
from scanner.scan.progress import Progress

log = logging.getLogger("scanner")

#: What a progress display shows: the line for a width, and the same as JSON event fields.
Render = Callable[[int], tuple[str, dict[str, Any]]]


def scan_parts(p: Progress, scenes: int | None) -> list[str]:
    """The line's parts, most useful first."""
    parts = [p.phase]
    if p.total:
        parts.append(f"{min(100.0, 100 * p.done / p.total):.1f}%")
    parts += [f"audited {p.audited:,}", f"flagged {p.flagged:,}", f"failed {p.failed:,}"]
    rate = p.rate
    parts.append("- img/s" if rate is None else f"{rate:,.1f} img/s")
    if p.total and rate:
        parts.append(f"ETA {duration(max(0, p.total - p.done) / rate)}")
    budget = p.budget
    if budget is not None and budget.rate.throttled:
        parts.append(f"throttled {budget.rate.throttled:,}")
    if p.retrying:
        parts.append(f"retrying {p.retrying:,}")
    parts.append(f"listed {p.listed:,}")
    if scenes is not None:
        parts.append(f"billed {p.audited * scenes:,} u")
    parts += [f"review {p.review:,}", f"skipped {p.skipped:,}"]
    if budget is not None:
        parts += [f"in-flight {budget.in_flight}", f"qps {budget.rate.rate:.1f}"]
    if p.jobs_running:
        parts.append(f"jobs running {p.jobs_running}")
    return parts


def fit(parts: list[str], width: int) -> str:
    """As many parts as fit in `width` columns, in order (the first always)."""
    line = parts[0]
    for part in parts[1:]:
        longer = f"{line} | {part}" if line is not parts[0] else f"{line}: {part}"
        if len(longer) > width:
            break
        line = longer
    return line[:width]


def scan_fields(p: Progress) -> dict[str, Any]:
    budget = p.budget
    return {
        "event": "progress",
        "phase": p.phase,
        "listed": p.listed,
        "audited": p.audited,
        "flagged": p.flagged,
        "review": p.review,
        "failed": p.failed,
        "skipped": p.skipped,
        "requests": p.requests,
        "total": p.total,
        "percent": None if not p.total else round(100 * p.done / p.total, 2),
        "rate": None if p.rate is None else round(p.rate, 2),
        "in_flight": budget.in_flight if budget else 0,
        "qps_budget": round(budget.rate.rate, 2) if budget else None,
        "throttled": budget.rate.throttled if budget else 0,
        "jobs_running": p.jobs_running,
    }


def scan_render(progress: Progress, scenes: int | None) -> Render:
    return lambda width: (fit(scan_parts(progress, scenes), width), scan_fields(progress))


async def show_progress(render: Render, interval: float) -> None:
    """A live line on a terminal; a log line (or JSON event) every `interval` s otherwise."""
    if sys.stderr.isatty() and not logs.json_logs:
        console = Console(stderr=True)
        with Live(Text(""), console=console, transient=True, refresh_per_second=4) as live:
            while True:
                live.update(Text(render(console.width - 1)[0]))
                await anyio.sleep(0.5)
    while True:
        await anyio.sleep(interval)
        line, fields = render(200)
        log.info("%s", line, extra=fields)
