"""Pages: listed pages recorded with their objects and the next marker, in one transaction.

A resume re-queues what is pending and lists on from the saved marker, so no finished page is
listed again (I2). Also the per-scan tallies read back from the objects' rows.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from scanner.models import Decision, ObjectRef
from scanner.store.base import StoreBase


def _ref(row: Sequence[Any]) -> ObjectRef:
    return ObjectRef(row[0], row[1], row[2], datetime.fromisoformat(row[3]), row[4])


class Pages(StoreBase):
    async def record_page(
        self, scan_id: int, decisions: Sequence[Decision], next_marker: str | None
    ) -> list[ObjectRef]:
        """Record a listed page and where listing goes on; returns the refs to audit.

        Objects already recorded (a page listed again after a crash) keep their state.
        """
        refs = [d.ref for d in decisions]
        async with self._tx() as conn:
            known: set[str] = set()
            if refs:
                async with conn.execute(
                    "SELECT key FROM scan_objects WHERE scan_id = ? AND key BETWEEN ? AND ?",
                    (scan_id, min(r.key for r in refs), max(r.key for r in refs)),
                ) as cur:
                    known = {row[0] async for row in cur}
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
            await conn.execute(
                "UPDATE scans SET listed = listed + ?, skipped = skipped + ?, marker = ?, "
                "listing_done = ?, updated_at = ? WHERE id = ?",
                (
                    len(fresh),
                    skipped,
                    next_marker or "",
                    int(next_marker is None),
                    time.time(),
                    scan_id,
                ),
            )
        return [d.ref for d in fresh if not d.skip]

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
