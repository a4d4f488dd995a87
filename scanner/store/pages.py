"""Pages: listed pages recorded with their objects and the next marker, in one transaction.

A resume re-queues what is pending and lists on from the saved marker, so no finished page is
listed again (I2). Also the per-scan tallies read back from the objects' rows.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from scanner.models import Decision, KeyRange, ObjectRef
from scanner.store.base import StoreBase


def _ref(row: Sequence[Any]) -> ObjectRef:
    return ObjectRef(row[0], row[1], row[2], datetime.fromisoformat(row[3]), row[4])


class Pages(StoreBase):
    async def record_page(
        self,
        scan_id: int,
        decisions: Sequence[Decision],
        next_marker: str | None,
        range_idx: int | None = None,
    ) -> list[ObjectRef]:
        """Record a listed page and where listing goes on (the scan's marker, or that of its
        range `range_idx`); returns the refs to audit.

        Objects already recorded (a page listed again after a crash) keep their state.
        """
        refs = [d.ref for d in decisions]
        async with self._tx() as conn:
            known: set[str] = set()
            if refs:
                rows = await self.rows_of_keys(
                    "SELECT key FROM scan_objects WHERE scan_id = ?",
                    [scan_id],
                    sorted(r.key for r in refs),
                )
                known = {row[0] for row in rows}
            fresh = [d for d in decisions if d.ref.key not in known]
            rows = [
                (
                    scan_id,
                    d.ref.key,
                    d.ref.etag,
                    d.ref.size,
                    d.ref.last_modified.isoformat(),
                    d.ref.storage_class,
                    "skipped" if d.skip else "pending",
                    d.skip or None,
                )
                for d in fresh
            ]
            await conn.executemany(
                "INSERT INTO scan_objects (scan_id, key, etag, size, last_modified, storage_class,"
                " state, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            skipped = sum(1 for d in fresh if d.skip)
            done = next_marker is None
            marker = next_marker or ""
            if range_idx is not None:
                await conn.execute(
                    "UPDATE scan_ranges SET marker = ?, done = ? WHERE scan_id = ? AND idx = ?",
                    (marker, int(done), scan_id, range_idx),
                )
                async with conn.execute(
                    "SELECT COUNT(*) FROM scan_ranges WHERE scan_id = ? AND done = 0", (scan_id,)
                ) as cur:
                    row = await cur.fetchone()
                done, marker = row is not None and row[0] == 0, ""
            await conn.execute(
                "UPDATE scans SET listed = listed + ?, skipped = skipped + ?, marker = ?, "
                "listing_done = ?, updated_at = ? WHERE id = ?",
                (len(fresh), skipped, marker, int(done), time.time(), scan_id),
            )
        return [d.ref for d in fresh if not d.skip]

    async def ranges(self, scan_id: int) -> list[KeyRange]:
        """The scan's key ranges (none: it lists from scans.marker)."""
        rows = await self._all(
            "SELECT idx, after, upto, marker, done FROM scan_ranges WHERE scan_id = ? ORDER BY idx",
            (scan_id,),
        )
        return [KeyRange(int(i), a, u, m, bool(d)) for i, a, u, m, d in rows]

    async def set_ranges(self, scan_id: int, points: Sequence[str]) -> list[KeyRange]:
        """Split a scan that has listed nothing yet at `points` (sorted): len(points) + 1
        ranges. A scan that has ranges, or has begun listing, keeps what it has."""
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT (SELECT COUNT(*) FROM scan_ranges WHERE scan_id = ?), marker, listed "
                "FROM scans WHERE id = ?",
                (scan_id, scan_id),
            ) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] == 0 and not row[1] and not row[2] and points:
                bounds = ["", *points]
                await conn.executemany(
                    "INSERT INTO scan_ranges (scan_id, idx, after, upto, marker) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (scan_id, i, lo, bounds[i + 1] if i + 1 < len(bounds) else None, lo)
                        for i, lo in enumerate(bounds)
                    ],
                )
        return await self.ranges(scan_id)

    async def split_range(self, scan_id: int, idx: int, mid: str) -> KeyRange | None:
        """Cut range `idx` at `mid` (it keeps keys <= mid) and open a range from `mid` to its
        old bound, in one transaction; None when it has listed past `mid` (or is done)."""
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT upto, marker, done, (SELECT MAX(idx) FROM scan_ranges WHERE scan_id = ?) "
                "FROM scan_ranges WHERE scan_id = ? AND idx = ?",
                (scan_id, scan_id, idx),
            ) as cur:
                row = await cur.fetchone()
            if row is None or row[2] or row[1] >= mid or (row[0] is not None and mid >= row[0]):
                return None
            new = KeyRange(int(row[3]) + 1, mid, row[0], mid)
            await conn.execute(
                "UPDATE scan_ranges SET upto = ? WHERE scan_id = ? AND idx = ?",
                (mid, scan_id, idx),
            )
            await conn.execute(
                "INSERT INTO scan_ranges (scan_id, idx, after, upto, marker) "
                "VALUES (?, ?, ?, ?, ?)",
                (scan_id, new.idx, new.after, new.upto, new.marker),
            )
        return new

    async def iter_pending(self, scan_id: int, chunk: int = 1000) -> AsyncIterator[list[ObjectRef]]:
        """Pending objects of a scan, in key order, `chunk` at a time."""
        after = ""
        while True:
            rows = await self._all(
                "SELECT key, etag, size, last_modified, storage_class FROM scan_objects "
                "WHERE scan_id = ? AND state = 'pending' AND key > ? ORDER BY key LIMIT ?",
                (scan_id, after, chunk),
            )
            if not rows:
                return
            yield [_ref(r) for r in rows]
            after = rows[-1][0]

    async def state_counts(self, scan_id: int) -> dict[str, int]:
        """Objects of a scan by state, counted from the rows (for accounting checks)."""
        rows = await self._all(
            "SELECT state, COUNT(*) FROM scan_objects WHERE scan_id = ? GROUP BY state", (scan_id,)
        )
        return {state: int(n) for state, n in rows}

    async def skip_reasons(self, scan_id: int) -> dict[str, int]:
        rows = await self._all(
            "SELECT reason, COUNT(*) FROM scan_objects WHERE scan_id = ? AND state = 'skipped' "
            "GROUP BY reason ORDER BY COUNT(*) DESC",
            (scan_id,),
        )
        return {str(r): int(n) for r, n in rows}

    async def failure_codes(self, scan_id: int) -> dict[str, int]:
        rows = await self._all(
            "SELECT reason, COUNT(*) FROM scan_objects WHERE scan_id = ? AND state = 'failed' "
            "GROUP BY reason ORDER BY COUNT(*) DESC",
            (scan_id,),
        )
        return {str(r): int(n) for r, n in rows}
