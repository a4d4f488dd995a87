"""Moderation jobs (videos, voice notes, documents): the JobId of each submission, stored in
the transaction that records it, what each was billed for, and the figures per class."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scanner.models import ObjectRef
from scanner.store.base import StoreBase, within
from scanner.store.pages import _ref

JOB_FIELDS = ("jobs", "frames", "seconds", "pages", "maybe_double")


@dataclass(frozen=True, slots=True)
class StoredJob:
    key: str
    kind: str
    job_id: str
    etag: str
    size: int
    submitted_at: float
    state: str

    def of(self, ref: ObjectRef) -> bool:
        """Whether this job was submitted for `ref`'s bytes (not an earlier upload)."""
        return (self.etag, self.size) == (ref.etag, ref.size)


class Jobs(StoreBase):
    async def stored_job(self, scan_id: int, key: str) -> StoredJob | None:
        row = await self._one(
            "SELECT key, kind, job_id, etag, size, submitted_at, state FROM jobs "
            "WHERE scan_id = ? AND key = ?",
            (scan_id, key),
        )
        return StoredJob(*row) if row else None

    async def record_job(
        self,
        scan_id: int,
        scope: str,
        ref: ObjectRef,
        kind: str,
        job_id: str,
        state: str,
        *,
        maybe_double: bool = False,
        now: float | None = None,
    ) -> None:
        """A submission and its JobId, in one transaction (a job submitted again for another
        upload of the key, or after its answer was lost, replaces the row)."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO jobs (scan_id, key, target, kind, job_id, etag, size, "
                "submitted_at, state, maybe_double) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (scan_id, ref.key, scope, kind, job_id, ref.etag, ref.size,
                 time.time() if now is None else now, state or "Submitted", int(maybe_double)),
            )  # fmt: skip

    async def finish_job(
        self, scan_id: int, key: str, state: str, frames: int, seconds: float, pages: int
    ) -> None:
        """A job's final state and what it was billed for (asking again writes the same)."""
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE jobs SET state = ?, frames = ?, seconds = ?, pages = ?, finished_at = ? "
                "WHERE scan_id = ? AND key = ?",
                (state, frames, seconds, pages, time.time(), scan_id, key),
            )

    async def open_jobs(self, scan_id: int) -> list[ObjectRef]:
        """The scan's objects still pending whose job was submitted: a resume asks about these
        first, before it submits anything new."""
        rows = await self._all(
            "SELECT o.key, o.etag, o.size, o.last_modified, o.storage_class FROM jobs j "
            "JOIN scan_objects o ON o.scan_id = j.scan_id AND o.key = j.key "
            "WHERE j.scan_id = ? AND o.state = 'pending' ORDER BY j.submitted_at",
            (scan_id,),
        )
        return [_ref(r) for r in rows]

    async def job_counts(self, scan_id: int) -> dict[str, dict[str, float]]:
        """Per class: jobs submitted, frames, seconds of sound and pages billed, and jobs
        possibly submitted twice, by this scan."""
        return await self._counts("WHERE scan_id = ?", [scan_id])

    async def job_spend(self, target: str) -> dict[str, dict[str, float]]:
        """The same figures for every scan of the target."""
        cond, args = within(target, "")
        return await self._counts(f"WHERE {cond}", args)

    async def _counts(self, where: str, args: Sequence[Any]) -> dict[str, dict[str, float]]:
        rows = await self._all(
            "SELECT kind, COUNT(*), SUM(frames), SUM(seconds), SUM(pages), SUM(maybe_double) "
            f"FROM jobs {where} GROUP BY kind ORDER BY kind",
            args,
        )
        return {
            kind: dict(zip(JOB_FIELDS, (int(n), int(f), round(s, 3), int(p), int(d)), strict=True))
            for kind, n, f, s, p, d in rows
        }

    async def known_units(self, refs: Sequence[ObjectRef]) -> dict[tuple[str, int], Any]:
        """(frames, seconds, pages) of earlier finished jobs of the same bytes (ETag, size):
        what a dry run knows exactly."""
        found: dict[tuple[str, int], Any] = {}
        for ref in refs:
            row = await self._one(
                "SELECT frames, seconds, pages FROM jobs WHERE etag = ? AND size = ? "
                "AND state = 'Success' ORDER BY finished_at DESC LIMIT 1",
                (ref.etag, ref.size),
            )
            if row is not None:
                found[(ref.etag, ref.size)] = tuple(row)
        return found
