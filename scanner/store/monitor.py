"""What monitoring reads from the store: counters over the store's life (they survive runs, so
Prometheus' `rate()` and `increase()` work), the last success, how the last run ended, and the
review queue. Cheap: sums over the scans table, and the queue's partial index."""

from __future__ import annotations

import time
from typing import Any

from scanner.store.base import StoreBase
from scanner.store.decisions import flagged_verdicts

#: Counters summed over a target's scans (the scans table's columns).
TOTALS = ("listed", "audited", "flagged", "review", "failed", "skipped", "shared",
          "maybe_double", "requests")  # fmt: skip


class Monitor(StoreBase):
    async def monitoring(self, target: str) -> dict[str, Any]:
        """The target's totals over all its scans, `billed` (audited less shared), the last
        success (0.0: never), the last ended run's exit code and end (None: none yet), and the
        review queue: undecided Result 1 and 2 verdicts and the age of the oldest."""
        sums = ", ".join(f"COALESCE(SUM({c}), 0)" for c in TOTALS)
        row = await self._one(
            f"SELECT {sums}, COALESCE(MAX(CASE WHEN state = 'done' THEN finished_at END), 0) "
            "FROM scans WHERE target = ?",
            (target,),
        )
        out: dict[str, Any] = dict(zip(TOTALS, map(int, row[: len(TOTALS)]), strict=True))
        out["billed"] = max(0, out["audited"] - out["shared"])
        out["last_success"] = float(row[len(TOTALS)])
        last = await self._one(
            "SELECT exit_code, run_ended_at FROM scans WHERE target = ? AND run_ended_at IS NOT "
            "NULL ORDER BY run_ended_at DESC LIMIT 1",
            (target,),
        )
        out["last_exit_code"], out["last_run_end"] = (last[0], last[1]) if last else (None, None)
        flagged, args = flagged_verdicts(target)
        queue = await self._one(
            f"SELECT COUNT(*), MIN(v.audited_at) {flagged} AND d.decision IS NULL", args
        )
        out["review_queue"] = int(queue[0])
        out["review_oldest_seconds"] = max(0.0, time.time() - queue[1]) if queue[1] else 0.0
        return out

    async def ran_scan(self, target: str, since: float) -> int | None:
        """The scan of the target a run that began at `since` ran (None: it reached none)."""
        row = await self._one(
            "SELECT id FROM scans WHERE target = ? AND run_started_at >= ? "
            "ORDER BY run_started_at DESC LIMIT 1",
            (target, since),
        )
        return int(row[0]) if row else None

    async def record_run_end(self, target: str, since: float, code: int) -> None:
        """How this run ended, on the scan it ran (the target's scan whose run started at or
        after `since`; none when the run ended before it reached one)."""
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE scans SET exit_code = ?, run_ended_at = ? WHERE id = (SELECT id FROM "
                "scans WHERE target = ? AND run_started_at >= ? ORDER BY run_started_at DESC "
                "LIMIT 1)",
                (code, time.time(), target, since),
            )
