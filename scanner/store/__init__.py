"""The store: SQLite checkpoints and verdicts. The only package that speaks SQL.

`Store` is one facade over one module per table family, all on one connection (`base`):
- `leases`: one live scanner per target;
- `scans`: a scan's row, state and counters;
- `pages`: listed pages with their objects and the next marker, in one transaction;
- `results`: audit outcomes, verdicts, failures, and what incremental rescans read of them;
- `report_rows`: the current state of every key, filtered and streamed;
- `sharing`: what a scan need not pay for (copies, another scan's verdicts), admitted through
  `claims` (what scans have in flight) and `contents` (which audited object holds which bytes);
- `seen`: the contents a dry run would send (a set on disk); `migrate`: the schema;
- `decisions`: what reviewers decided of verdicts, with history;
- `queue`: the review queue (keyset pages), its counts and overview;
- `jobs`: moderation jobs (videos, voice, documents): JobIds as submitted, units billed;
- `journal`: act runs and one row per object per run (I6), and what is in effect per object.
The counters in `scans` change only in the same transactions as the rows they count.
"""

from __future__ import annotations

from scanner.store.badcases import Badcases, QueuedBadcase
from scanner.store.claims import Claims
from scanner.store.decisions import DECISIONS, Decided, Decisions
from scanner.store.jobs import Jobs, StoredJob
from scanner.store.journal import ActRun, Entry, Journal
from scanner.store.leases import Leases
from scanner.store.monitor import Monitor
from scanner.store.pages import Pages
from scanner.store.queue import Cursor, QueueFilter, Review
from scanner.store.raws import pack_raw, unpack_raw
from scanner.store.report_rows import REPORT_COLUMNS, ReportFilter, Reports
from scanner.store.results import Prior, Results
from scanner.store.review_claims import ReviewClaims
from scanner.store.scans import Scans
from scanner.store.sharing import Admission, Sharing
from scanner.store.spend import PERIODS, Spend

__all__ = [
    "DECISIONS",
    "PERIODS",
    "REPORT_COLUMNS",
    "ActRun",
    "Admission",
    "Cursor",
    "Decided",
    "Entry",
    "Prior",
    "QueueFilter",
    "QueuedBadcase",
    "ReportFilter",
    "Store",
    "StoredJob",
    "pack_raw",
    "unpack_raw",
]


class Store(
    Leases,
    Scans,
    Pages,
    Results,
    Sharing,
    Claims,
    Reports,
    Review,
    Decisions,
    Journal,
    Spend,
    Monitor,
    Badcases,
    ReviewClaims,
    Jobs,
):
    """Checkpoints and verdicts in one SQLite file; an async context manager."""

    async def review_queue(self, target: str) -> dict[str, int]:
        """The scan record's `review_queue`: decisions by kind, what is left to review, and
        the wrong verdicts told to the service (`badcases_sent`, `_pending`, `_failed`)."""
        counts = await self.review_counts(target)
        told = await self.badcase_counts(target)
        return {**counts, **{f"badcases_{state}": n for state, n in told.items()}}
