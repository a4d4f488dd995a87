"""Wrong verdicts queued for the service (`badcases`, schema 12): what a reviewer's decision
says the service got wrong, sent once each and retried until then (`scanner.audit.badcase`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scanner.models import split_target
from scanner.store.base import StoreBase

NORMAL = "Normal"


@dataclass(frozen=True, slots=True)
class QueuedBadcase:
    target: str  # the verdicts' scope (a bucket's id, or a URL list's)
    key: str
    etag: str
    label: str
    suggested_label: str
    job_id: str
    moderated_at: float | None
    attempts: int


class Badcases(StoreBase):
    async def queue_badcases(
        self,
        target: str,
        items: Sequence[tuple[str, str]],
        decision: str,
        reviewer: str,
        label: str = "",
    ) -> int:
        """Queue what `decision` on `items` (key, ETag) says the service got wrong: an approve
        of a Result 1 or 2 verdict (SuggestedLabel Normal), a block of a Result 0 one (the
        reviewer's `label`). Any other decision withdraws what is still unsent for them (an
        undo). Returns how many were queued; a case already queued or sent is not again."""
        scope, _ = split_target(target)
        now = time.time()
        queued = 0
        async with self._tx() as conn:
            for key, etag in items:
                async with conn.execute(
                    "SELECT result, label, job_id, audited_at FROM verdicts "
                    "WHERE target = ? AND key = ? AND etag = ?",
                    (scope, key, etag),
                ) as cur:
                    row = await cur.fetchone()
                if row is None:
                    continue
                result, service_label, job_id, audited_at = row
                if decision == "approve" and result in (1, 2):
                    suggested = NORMAL
                elif decision == "block" and result == 0 and label:
                    suggested = label
                else:
                    await conn.execute(
                        "DELETE FROM badcases WHERE target = ? AND key = ? AND etag = ? AND "
                        "state = 'pending'",
                        (scope, key, etag),
                    )
                    continue
                cur = await conn.execute(
                    "INSERT OR IGNORE INTO badcases (target, key, etag, label, suggested_label, "
                    "job_id, moderated_at, reviewer, queued_at, state, next_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (scope, key, etag, service_label or NORMAL, suggested, job_id or "",
                     audited_at, reviewer, now, now),
                )  # fmt: skip
                queued += cur.rowcount
        return queued

    async def due_badcases(self, now: float, limit: int = 50) -> list[QueuedBadcase]:
        """Pending cases whose time has come, oldest first."""
        rows = await self._all(
            "SELECT target, key, etag, label, suggested_label, job_id, moderated_at, attempts "
            "FROM badcases WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?",
            (now, limit),
        )
        return [QueuedBadcase(*row) for row in rows]

    async def badcase_sent(self, case: QueuedBadcase, request_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE badcases SET state = 'sent', sent_at = ?, request_id = ?, error = NULL, "
                "attempts = attempts + 1 WHERE target = ? AND key = ? AND etag = ? AND "
                "suggested_label = ?",
                (time.time(), request_id, *_pk(case)),
            )

    async def badcase_failed(self, case: QueuedBadcase, error: str, *, wait: float | None) -> None:
        """One more failed attempt: tried again `wait` seconds from now, or (None) failed for
        good."""
        attempts = case.attempts + 1
        done = wait is None
        wait = wait or 0.0
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE badcases SET attempts = ?, error = ?, state = ?, next_at = ? "
                "WHERE target = ? AND key = ? AND etag = ? AND suggested_label = ?",
                (attempts, error[:500], "failed" if done else "pending", time.time() + wait,
                 *_pk(case)),
            )  # fmt: skip

    async def badcase_counts(self, target: str) -> dict[str, int]:
        """Cases by state (pending, sent, failed) for the target's verdicts (none in a store
        read as it is, from before schema 12)."""
        scope, _ = split_target(target)
        out = {"pending": 0, "sent": 0, "failed": 0}
        if await self._one("SELECT 1 FROM sqlite_master WHERE name = 'badcases'") is None:
            return out
        rows = await self._all(
            "SELECT state, COUNT(*) FROM badcases WHERE target = ? GROUP BY state", (scope,)
        )
        out.update({str(s): int(n) for s, n in rows})
        return out


def _pk(case: QueuedBadcase) -> tuple[Any, ...]:
    return case.target, case.key, case.etag, case.suggested_label
