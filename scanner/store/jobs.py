"""Moderation jobs (videos, voice notes, documents): the JobId of each submission, stored in
the transaction that records it, what each was billed for, and the figures per class."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scanner.models import ObjectRef
from scanner.store.base import IN_JSON, StoreBase, within
from scanner.store.pages import _ref

JOB_FIELDS = ("jobs", "audited", "frames", "seconds", "pages", "maybe_double")


@dataclass(frozen=True, slots=True)
class StoredJob:
    key: str
    kind: str
    job_id: str
    etag: str
    size: int
    submitted_at: float
    state: str
    maybe_double: bool = False  # submitted again after a lost answer

    def of(self, ref: ObjectRef) -> bool:
        """Whether this job was submitted for `ref`'s bytes (not an earlier upload)."""
        return (self.etag, self.size) == (ref.etag, ref.size)


@dataclass(frozen=True, slots=True)
class Known:
    """What finished jobs of an object's bytes found: frames under each policy, the seconds
    of sound (0: not moderated), pages."""

    frames: dict[str, int]
    seconds: float
    pages: int


class Jobs(StoreBase):
    async def stored_job(self, scan_id: int, key: str) -> StoredJob | None:
        row = await self._one(
            "SELECT key, kind, job_id, etag, size, submitted_at, state, maybe_double FROM jobs "
            "WHERE scan_id = ? AND key = ?",
            (scan_id, key),
        )
        if row is None:
            return None
        key_, kind, job_id, etag, size, submitted_at, state, doubled = row
        return StoredJob(key_, kind, job_id, etag, size, submitted_at, state, bool(doubled))

    async def record_job(
        self,
        scan_id: int,
        scope: str,
        ref: ObjectRef,
        kind: str,
        job_id: str,
        state: str,
        *,
        policy: str,
        maybe_double: bool = False,
        now: float | None = None,
    ) -> None:
        """A submission and its JobId, in one transaction (a job submitted again for another
        upload of the key, or after its answer was lost, replaces the row)."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO jobs (scan_id, key, target, kind, job_id, etag, size, "
                "policy, submitted_at, state, maybe_double) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (scan_id, ref.key, scope, kind, job_id, ref.etag, ref.size, policy,
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
        """Per class: jobs submitted, those that ended with a verdict, frames, seconds of
        sound and pages billed, and jobs possibly submitted twice, by this scan."""
        return (await self._figures("'scan'", "scan_id = ?", [scan_id])).get("scan", {})

    async def job_periods(self, target: str, period: str) -> dict[str, dict[str, Any]]:
        """`job_counts`' figures per period (`period`: SQL of a row's unix time `{t}` or
        `scan_id`, from `store.spend.PERIODS`) of the target's jobs, counted when finished."""
        cond, args = within(target)
        return await self._figures(
            period.format(t="COALESCE(finished_at, submitted_at)"), cond, args
        )

    async def _figures(
        self, group: str, where: str, args: Sequence[Any]
    ) -> dict[str, dict[str, Any]]:
        rows = await self._all(
            f"SELECT {group}, kind, COUNT(*), SUM(state = 'Success'), SUM(frames), SUM(seconds), "
            f"SUM(pages), SUM(maybe_double) FROM jobs WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
            args,
        )
        out: dict[str, dict[str, Any]] = {}
        for p, kind, n, a, f, s, pages, d in rows:
            values = (int(n), int(a), int(f), round(s, 3), int(pages), int(d))
            out.setdefault(str(p), {})[kind] = dict(zip(JOB_FIELDS, values, strict=True))
        return out

    async def known_units(self, refs: Sequence[ObjectRef]) -> dict[str, Known]:
        """What earlier finished jobs of the same bytes (ETag, size) found, by key: what a
        dry run knows exactly (one query for a page's media)."""
        rows = await self._all(
            "SELECT etag, size, policy, frames, seconds, pages FROM jobs WHERE state = 'Success' "
            f"AND etag IN {IN_JSON} ORDER BY finished_at DESC",
            (json.dumps(sorted({r.etag for r in refs})),),
        )
        seen: dict[tuple[str, int], list[Any]] = {}
        for etag, size, *found in rows:
            seen.setdefault((etag, int(size)), []).append(found)
        out: dict[str, Known] = {}
        for ref in refs:
            jobs = seen.get((ref.etag, ref.size))
            if jobs:  # newest first
                out[ref.key] = Known(
                    {str(p): int(f) for p, f, _, _ in jobs},
                    max(float(s) for _, _, s, _ in jobs),
                    int(jobs[0][3]),
                )
        return out
