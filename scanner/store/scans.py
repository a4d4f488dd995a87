"""Scans: one row per scan of a target, its state and the counters the other writes keep."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from scanner.errors import StoreError
from scanner.models import ScanStatus, Target
from scanner.store.base import StoreBase

_SCAN_COLUMNS = (
    "id, target, mode, policy, state, marker, listing_done, listed, audited, flagged, review, "
    "failed, skipped, requests, error, started_at, updated_at, finished_at, run_started_at, "
    "run_audited, deleted, maybe_double, frozen, shared, reuse_since, source_digest"
)


def _status(row: Sequence[Any]) -> ScanStatus:
    values = list(row)
    values[6] = bool(values[6])
    return ScanStatus(*values)


class Scans(StoreBase):
    async def latest_scan(self, target: Target) -> ScanStatus | None:
        row = await self._one(
            f"SELECT {_SCAN_COLUMNS} FROM scans WHERE target = ? ORDER BY id DESC LIMIT 1",
            (target.id,),
        )
        return _status(row) if row else None

    async def unfinished_scans(self, target: Target) -> list[ScanStatus]:
        """The target's scans not done and not abandoned (paused, interrupted, failed, or
        running), newest first."""
        rows = await self._all(
            f"SELECT {_SCAN_COLUMNS} FROM scans WHERE target = ? "
            "AND state NOT IN ('done', 'abandoned') ORDER BY id DESC",
            (target.id,),
        )
        return [_status(row) for row in rows]

    async def pending_count(self, scan_id: int) -> int:
        """How many objects of a scan are still pending."""
        row = await self._one(
            "SELECT COUNT(*) FROM scan_objects WHERE scan_id = ? AND state = 'pending'",
            (scan_id,),
        )
        return int(row[0]) if row else 0

    async def previous_listed(self, target: str, before: int) -> int | None:
        """How many objects the last finished scan of `target` before scan `before` listed:
        the size to expect while a scan is still listing."""
        row = await self._one(
            "SELECT listed FROM scans WHERE target = ? AND id < ? AND state = 'done' "
            "ORDER BY id DESC LIMIT 1",
            (target, before),
        )
        return int(row[0]) if row else None

    async def scan(self, scan_id: int) -> ScanStatus:
        row = await self._one(f"SELECT {_SCAN_COLUMNS} FROM scans WHERE id = ?", (scan_id,))
        if row is None:
            raise StoreError(f"no scan {scan_id} in {self.path!r}")
        return _status(row)

    async def has_scan(self, scan_id: int) -> bool:
        return await self._one("SELECT 1 FROM scans WHERE id = ?", (scan_id,)) is not None

    async def scans(self, limit: int = 20, target: str | None = None) -> list[ScanStatus]:
        """The latest scans (of `target` only, when given), newest first."""
        where = "" if target is None else "WHERE target = ? "
        rows = await self._all(
            f"SELECT {_SCAN_COLUMNS} FROM scans {where}ORDER BY id DESC LIMIT ?",
            (limit,) if target is None else (target, limit),
        )
        return [_status(r) for r in rows]

    async def start_scan(
        self,
        target: Target,
        policy: str,
        mode: str = "full",
        *,
        reuse: bool = True,
        source_digest: str = "",
    ) -> ScanStatus:
        """A new running scan of `target`; `reuse=False` (--force): only verdicts made since it
        started are taken (its own, a scan's beside it), everything else is audited again."""
        now = time.time()
        async with self._tx() as conn:
            cur = await conn.execute(
                "INSERT INTO scans (target, bucket, region, prefix, mode, policy, state, "
                "started_at, updated_at, run_started_at, reuse_since, source_digest) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (
                    target.id,
                    target.bucket,
                    target.region,
                    target.prefix,
                    mode,
                    policy,
                    now,
                    now,
                    now,
                    0.0 if reuse else now,
                    source_digest,
                ),
            )
            scan_id = cur.lastrowid
        assert scan_id is not None
        return await self.scan(scan_id)

    async def resume_scan(self, scan_id: int, policy: str) -> ScanStatus:
        """Mark an unfinished scan running again (a new run of it)."""
        now = time.time()
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE scans SET state = 'running', error = NULL, policy = ?, updated_at = ?, "
                "run_started_at = ?, run_audited = 0 WHERE id = ?",
                (policy, now, now, scan_id),
            )
        return await self.scan(scan_id)

    async def finish_scan(self, scan_id: int, state: str, error: str | None = None) -> ScanStatus:
        now = time.time()
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE scans SET state = ?, error = ?, updated_at = ?, "
                "finished_at = CASE WHEN ? = 'done' THEN ? ELSE finished_at END WHERE id = ?",
                (state, error, now, state, now, scan_id),
            )
        return await self.scan(scan_id)
