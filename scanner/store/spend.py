"""Spend: what the service billed, read back from the verdicts (`report --spend`, the summary,
`status`); moderation jobs from their rows (`jobs`: units per class, their verdicts are not
billed images). Every verdict made by an audit was billed once (a failure is not billed); a verdict
shared from a copy or another scan's audit (`verdict_from`) was not, and counts as saved. A
verdict a re-audit replaced is in `verdict_history` and was billed too. Resends after a lost
answer may have been billed twice: the scans count them (`maybe_double`), shown apart."""

from __future__ import annotations

from typing import Any

from scanner.models import key_range, split_target
from scanner.store.base import within
from scanner.store.jobs import Jobs

#: How `--by` groups: the SQL of a period, from a row's unix time or scan id.
PERIODS = {
    "scan": "scan_id",
    "day": "strftime('%Y-%m-%d', {t}, 'unixepoch')",
    "month": "strftime('%Y-%m', {t}, 'unixepoch')",
}


class Spend(Jobs):
    async def spend(self, target: str, by: str) -> list[dict[str, Any]]:
        """Images billed and saved per period (`PERIODS`) under the target, oldest first; each
        with the images its scans may have paid twice (resends after a lost answer)."""
        period = PERIODS[by].format(t="audited_at")
        cond, args = within(target)
        rows = await self._all(
            f"SELECT period, SUM(verdict_from IS NULL), SUM(verdict_from IS NOT NULL) FROM ("
            f"SELECT {period} AS period, verdict_from FROM verdicts WHERE {cond} UNION ALL "
            f"SELECT {period}, verdict_from FROM verdict_history WHERE {cond}) "
            "GROUP BY period ORDER BY period",
            [*args, *args],
        )
        doubled = await self._maybe_double(target, by)
        jobs = await self.job_periods(target, PERIODS[by])
        out = {
            str(p): {by: p, "billed_images": int(b), "saved_images": int(s), "maybe_double": 0}
            for p, b, s in rows
        }
        for p, counts in jobs.items():  # their verdicts are billed by the jobs' own units
            row = out.setdefault(
                p, {by: p, "billed_images": 0, "saved_images": 0, "maybe_double": 0}
            )
            row["billed_images"] = max(
                0, row["billed_images"] - sum(c["audited"] for c in counts.values())
            )
            row["jobs"] = counts
        for p, n in doubled.items():
            out.setdefault(p, {by: p, "billed_images": 0, "saved_images": 0, "maybe_double": 0})
            out[p]["maybe_double"] = n
        return [out[p] for p in sorted(out, key=lambda p: (len(p), p))]

    async def _maybe_double(self, target: str, by: str) -> dict[str, int]:
        """Images possibly billed twice, per period, by the scans under the target (a day or
        month: the scan's start)."""
        period = PERIODS[by].replace("scan_id", "id").format(t="started_at")
        scope, prefix = split_target(target)
        if scope.startswith("urls://"):
            where, args = "target = ?", [target]
        else:
            bucket, _, region = scope.removeprefix("cos://").rstrip("/").partition(".")
            where = "bucket = ? AND region = ? AND prefix >= ? AND prefix < ?"
            args = [bucket, region, *key_range(prefix)]
        rows = await self._all(
            f"SELECT {period}, SUM(maybe_double) FROM scans WHERE maybe_double > 0 AND {where} "
            "GROUP BY 1",
            args,
        )
        return {str(p): int(n) for p, n in rows}
