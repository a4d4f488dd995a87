"""Results: audit outcomes, verdicts and failures per key of a target, and what a nightly
rescan needs of them (priors, deletions, retry-failed seeds).

`record_results` writes a group of outcomes in one transaction: the objects' states, the
verdicts upserted, the failures, and the scan's counters, together.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scanner.models import ImageVerdict, ObjectRef, Result, Target
from scanner.store.base import HeldClaims, StoreBase, within
from scanner.store.claims import release_settled
from scanner.store.contents import note_contents
from scanner.store.migrate import content_hash
from scanner.store.raws import pack_raw

_UPSERT_VERDICT = """
INSERT INTO verdicts (target, key, etag, size, policy, result, label, score, category, sub_label,
                      text, job_id, raw, audited_at, scan_id, forbid_state, user_id, verdict_from)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target, key) DO UPDATE SET
    etag = excluded.etag, size = excluded.size, policy = excluded.policy,
    result = excluded.result, label = excluded.label, score = excluded.score,
    category = excluded.category, sub_label = excluded.sub_label, text = excluded.text,
    job_id = excluded.job_id, raw = excluded.raw, audited_at = excluded.audited_at,
    scan_id = excluded.scan_id, deleted_scan = NULL, forbid_state = excluded.forbid_state,
    user_id = excluded.user_id, verdict_from = excluded.verdict_from
"""
_FAILURE_COLUMNS = """
INSERT INTO failures (target, key, etag, size, last_modified, storage_class, policy, code,
                      message, retryable, scan_id, failed_at)
SELECT ?, key, etag, size, last_modified, storage_class, ?, COALESCE(reason, ''),
       COALESCE(message, ''), ?, scan_id, ?
FROM scan_objects"""
_FAILURE_CONFLICT = """
ON CONFLICT (target, key) DO UPDATE SET
    etag = excluded.etag, size = excluded.size, last_modified = excluded.last_modified,
    storage_class = excluded.storage_class, policy = excluded.policy, code = excluded.code,
    message = excluded.message, retryable = excluded.retryable, scan_id = excluded.scan_id,
    failed_at = excluded.failed_at, deleted_scan = NULL
"""
#: An object of a scan that ended failed, remembered as the target's failure for its key.
_UPSERT_FAILED_OBJECT = (
    _FAILURE_COLUMNS + " WHERE scan_id = ? AND key = ? AND state = 'failed'" + _FAILURE_CONFLICT
)
#: Every object of a scan failed with one code (retries spent), remembered likewise.
_UPSERT_FAILED_WITH = (
    _FAILURE_COLUMNS + " WHERE scan_id = ? AND state = 'failed' AND reason = ?" + _FAILURE_CONFLICT
)
_CLEAR_FAILURE = "DELETE FROM failures WHERE target = ? AND key = ?"
_BILLED = (
    "INSERT INTO billed_days (day, images) VALUES (?, ?) ON CONFLICT (day) "
    "DO UPDATE SET images = images + excluded.images"
)
_COUNT_SCAN = (
    "UPDATE scans SET audited = audited + ?, flagged = flagged + ?, "
    "review = review + ?, failed = failed + ?, requests = requests + ?, "
    "run_audited = run_audited + ?, maybe_double = maybe_double + ?, "
    "frozen = frozen + ?, shared = shared + ?, updated_at = ? WHERE id = ?"
)
_SPENT = (  # a retryable failure on its last allowed attempt
    "UPDATE scan_objects SET state = 'failed', reason = ?, message = ?, attempts = attempts + 1 "
    "WHERE scan_id = ? AND key = ? AND state = 'pending' AND attempts + 1 >= ?"
)
_LATER = (  # a retryable failure with attempts left: stays pending for a later pass
    "UPDATE scan_objects SET reason = ?, message = ?, attempts = attempts + 1 "
    "WHERE scan_id = ? AND key = ? AND state = 'pending' AND attempts + 1 < ?"
)
_MARK = (
    "UPDATE scan_objects SET state = ?, reason = ?, message = ?, attempts = attempts + 1 "
    "WHERE scan_id = ? AND key = ? AND state = 'pending'"
)


@dataclass(frozen=True, slots=True)
class Prior:
    """The last outcome the store holds for a key."""

    etag: str
    size: int
    policy: str
    failed: bool
    retryable: bool


@dataclass(slots=True)
class _Rows:
    """A group of outcomes as the rows each table takes (`_rows`: pure, no SQL)."""

    marks: dict[str, list[tuple[Any, ...]]]  # scan_objects: "ok0".."ok2" audited, "failed"
    retry: list[tuple[Any, ...]]  # retryable failures: failed when spent, else pending
    verdicts: list[tuple[Any, ...]]  # the _UPSERT_VERDICT rows
    policies: dict[str, str]  # key -> the policy fingerprint recorded with its outcome


def _verdict_row(
    target: Target, ref: ObjectRef, v: ImageVerdict, policy: str, user: str, now: float,
    scan_id: int,
) -> tuple[Any, ...]:  # fmt: skip
    assert v.result is not None
    return (
        target.scope, ref.key, ref.etag, ref.size, policy, int(v.result), v.label, v.score,
        v.category, v.sub_label, v.text, v.job_id,
        pack_raw(v.raw) if v.raw_packed is None else v.raw_packed, now, scan_id,
        v.forbid_state, user or None, v.shared_from,
    )  # fmt: skip


def _rows(
    scan_id: int,
    target: Target,
    policy_of: Callable[[ObjectRef], str],
    outcomes: Sequence[tuple[ObjectRef, ImageVerdict]],
    user: Callable[[ObjectRef], str] | None,
    max_attempts: int,
    now: float,
) -> _Rows:
    rows = _Rows({"ok0": [], "ok1": [], "ok2": [], "failed": []}, [], [], {})
    for ref, v in outcomes:
        policy = rows.policies[ref.key] = policy_of(ref)
        if not v.failed and v.result is not None:
            rows.marks[f"ok{int(v.result)}"].append(("audited", None, None, scan_id, ref.key))
            who = user(ref) if user else ""
            rows.verdicts.append(_verdict_row(target, ref, v, policy, who, now, scan_id))
        elif v.retryable:
            rows.retry.append((v.code, v.message, scan_id, ref.key, max_attempts))
        else:
            rows.marks["failed"].append(("failed", v.code, v.message, scan_id, ref.key))
    return rows


async def _mark_objects(conn: Any, rows: _Rows) -> dict[str, int]:
    """The objects' states in the scan; how many of each were marked."""
    counts = {}
    for name, marks in rows.marks.items():
        counts[name] = (await conn.executemany(_MARK, marks)).rowcount if marks else 0
    if rows.retry:
        counts["failed"] += (await conn.executemany(_SPENT, rows.retry)).rowcount
        await conn.executemany(_LATER, rows.retry)
    return counts


async def _write_verdicts(
    conn: Any, held: HeldClaims, scope: str, verdicts: list[tuple[Any, ...]], owner: str,
    now: float,
) -> None:  # fmt: skip
    """The verdict rows, the failures they end, and the `contents` rows of the audited ones
    (not copies': their content's verdict is another key's)."""
    if verdicts:
        await conn.executemany(_UPSERT_VERDICT, verdicts)
        await conn.executemany(_CLEAR_FAILURE, [(scope, v[1]) for v in verdicts])
        contents = [
            (h, v[1])
            for v in verdicts
            if v[-1] is None and (h := content_hash(scope, v[2], v[3])) is not None
        ]
        await note_contents(conn, held, owner, contents, now)


async def _write_failures(conn: Any, scope: str, rows: _Rows, now: float, scan_id: int) -> None:
    """Objects that ended failed (final, or retries spent) become the target's failures."""
    final = [(scope, rows.policies[r[4]], 0, now, scan_id, r[4]) for r in rows.marks["failed"]]
    final += [(scope, rows.policies[r[3]], 1, now, scan_id, r[3]) for r in rows.retry]
    if final:
        await conn.executemany(_UPSERT_FAILED_OBJECT, final)


class Results(StoreBase):
    async def record_results(
        self,
        scan_id: int,
        target: Target,
        policy: str | Callable[[ObjectRef], str],
        outcomes: Sequence[tuple[ObjectRef, ImageVerdict]],
        *,
        user: Callable[[ObjectRef], str] | None = None,
        requests: int,
        max_attempts: int,
        owner: str = "",
    ) -> None:
        """Record audit outcomes in one transaction.

        A verdict marks the object audited and upserts the target's verdict for the key. A
        final failure, or a retryable one on its `max_attempts`-th attempt, marks it failed;
        other retryable failures leave it pending with the code, for a later pass. `policy`
        is the fingerprint recorded with each outcome (or a function of the object giving it).
        Whatever the outcome, the keys are no longer in flight: `owner`'s claims are released.
        """
        policy_of = policy if callable(policy) else (lambda _ref: policy)
        now = time.time()
        rows = _rows(scan_id, target, policy_of, outcomes, user, max_attempts, now)
        async with self._tx() as conn:
            counts = await _mark_objects(conn, rows)
            await _write_verdicts(conn, self._claims, target.scope, rows.verdicts, owner, now)
            await release_settled(
                conn, self._claims, target.scope, owner, [ref for ref, _ in outcomes]
            )
            await _write_failures(conn, target.scope, rows, now, scan_id)
            audited = counts["ok0"] + counts["ok1"] + counts["ok2"]
            shared = sum(1 for _, v in outcomes if v.shared_from is not None and not v.failed)
            if requests and audited - shared > 0:
                await conn.execute(_BILLED, (utc_day(now), audited - shared))
            maybe_double = sum(v.maybe_double for _, v in outcomes)
            frozen = sum(bool(v.forbid_state) for _, v in outcomes if not v.failed)
            await conn.execute(
                _COUNT_SCAN,
                (audited, counts["ok1"], counts["ok2"], counts["failed"], requests, audited,
                 maybe_double, frozen, shared, now, scan_id),
            )  # fmt: skip

    async def record_check(
        self, target: Target, ref: ObjectRef, verdict: ImageVerdict, policy: str, user: str
    ) -> None:
        """A `check` verdict, kept like a scan's (scan 0): scans of the target reuse it."""
        now = time.time()
        row = _verdict_row(target, ref, verdict, policy, user, now, 0)
        async with self._tx() as conn:
            await _write_verdicts(conn, self._claims, target.scope, [row], "", now)

    async def billed_on(self, day: str) -> int:
        """Images billed on a UTC day (YYYY-MM-DD), by every scan of this store."""
        row = await self._all("SELECT images FROM billed_days WHERE day = ?", (day,))
        return int(row[0][0]) if row else 0

    async def fail_pending(self, scan_id: int, code: str, message: str) -> int:
        """Mark every pending object of a scan failed (used when retries are spent)."""
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE scan_objects SET state = 'failed', reason = COALESCE(reason, ?), "
                "message = COALESCE(message, ?) WHERE scan_id = ? AND state = 'pending'",
                (code, message, scan_id),
            )
            n = cur.rowcount
            await conn.execute("UPDATE scans SET failed = failed + ? WHERE id = ?", (n, scan_id))
        return n

    async def spent_to_failures(self, scan_id: int, target: Target, policy: str, code: str) -> None:
        """Remember the objects `fail_pending` just failed as retryable failures."""
        async with self._tx() as conn:
            await conn.execute(
                _UPSERT_FAILED_WITH, (target.scope, policy, 1, time.time(), scan_id, code)
            )

    async def priors(self, target: Target, keys: Sequence[str]) -> dict[str, Prior]:
        """What the store knows of a page's `keys` (sorted): last verdict or failure."""
        if not keys:
            return {}
        found: dict[str, Prior] = {}
        for row in await self.rows_of_keys(
            "SELECT key, etag, size, policy FROM verdicts WHERE target = ?", [target.scope], keys
        ):
            found[row[0]] = Prior(row[1], int(row[2]), row[3], failed=False, retryable=False)
        for row in await self.rows_of_keys(
            "SELECT key, etag, size, policy, retryable FROM failures WHERE target = ?",
            [target.scope],
            keys,
        ):
            found[row[0]] = Prior(row[1], int(row[2]), row[3], failed=True, retryable=bool(row[4]))
        return found

    async def has_outcomes(self, target: Target) -> bool:
        """Whether any scan of the bucket left a verdict or a failure under the target."""
        cond, args = within(target.id)
        row = await self._one(
            f"SELECT EXISTS (SELECT 1 FROM verdicts WHERE {cond}) "
            f"OR EXISTS (SELECT 1 FROM failures WHERE {cond})",
            (*args, *args),
        )
        return bool(row[0])

    async def mark_deleted(self, scan_id: int, target: Target) -> int:
        """Keys under the target this (complete) scan did not list are marked deleted by it."""
        cond, args = within(target.id)
        absent = (
            "deleted_scan IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM scan_objects o WHERE o.scan_id = ? AND o.key = {t}.key)"
        )
        seen = (
            "deleted_scan IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM scan_objects o WHERE o.scan_id = ? AND o.key = {t}.key)"
        )
        async with self._tx() as conn:
            gone = 0
            for table in ("verdicts", "failures"):
                cur = await conn.execute(
                    f"UPDATE {table} SET deleted_scan = ? WHERE {cond} AND "
                    + absent.format(t=table),
                    (scan_id, *args, scan_id),
                )
                gone += cur.rowcount
                await conn.execute(
                    f"UPDATE {table} SET deleted_scan = NULL WHERE {cond} AND "
                    + seen.format(t=table),
                    (*args, scan_id),
                )
            await conn.execute("UPDATE scans SET deleted = ? WHERE id = ?", (gone, scan_id))
        return gone

    async def seed_failures(self, scan_id: int, target: Target) -> int:
        """A retry-failed scan: every key whose last attempt failed becomes pending in it."""
        cond, args = within(target.id)
        async with self._tx() as conn:
            cur = await conn.execute(
                "INSERT INTO scan_objects (scan_id, key, etag, size, last_modified, storage_class,"
                " state) SELECT ?, key, etag, size, last_modified, storage_class, 'pending' "
                f"FROM failures WHERE {cond} AND deleted_scan IS NULL",
                (scan_id, *args),
            )
            n = cur.rowcount
            # their answer was lost once already: auditing them again may bill them twice
            async with conn.execute(
                f"SELECT COUNT(*) FROM failures WHERE {cond} AND deleted_scan IS NULL "
                "AND code = 'timeout-maybe-billed'",
                args,
            ) as c:
                (maybe,) = await c.fetchone() or (0,)
            await conn.execute(
                "UPDATE scans SET listed = ?, listing_done = 1, maybe_double = ? WHERE id = ?",
                (n, maybe, scan_id),
            )
        return n

    async def iter_failed(
        self, target: Target, chunk: int = 1000
    ) -> AsyncIterator[list[ObjectRef]]:
        """The objects `seed_failures` would make pending, in key order, `chunk` at a time."""
        cond, args = within(target.id)
        after = ""
        while rows := await self._all(
            "SELECT key, etag, size, last_modified, storage_class FROM failures "
            f"WHERE {cond} AND deleted_scan IS NULL AND key > ? ORDER BY key LIMIT ?",
            (*args, after, chunk),
        ):
            yield [ObjectRef(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4]) for r in rows]
            after = rows[-1][0]

    async def verdict_map(self, target: Target) -> dict[str, tuple[int, str, int]]:
        """key -> (result, label, score) of every verdict under a target."""
        cond, args = within(target.id)
        rows = await self._all(f"SELECT key, result, label, score FROM verdicts WHERE {cond}", args)
        return {k: (Result(r).value, label, s) for k, r, label, s in rows}

    async def flagged_examples(self, scan_id: int, n: int = 5) -> list[dict[str, Any]]:
        """The scan's `n` flagged or suspicious verdicts of the highest scores."""
        rows = await self._all(
            "SELECT key, result, label, score FROM verdicts WHERE scan_id = ? AND result > 0 "
            "ORDER BY score DESC, key LIMIT ?",
            (scan_id, n),
        )
        return [{"key": k, "result": r, "label": lb, "score": sc} for k, r, lb, sc in rows]

    async def labels(self, scan_id: int) -> dict[str, int]:
        rows = await self._all(
            "SELECT label, COUNT(*) FROM verdicts WHERE scan_id = ? AND result > 0 "
            "GROUP BY label ORDER BY COUNT(*) DESC",
            (scan_id,),
        )
        return {str(label): int(n) for label, n in rows}

    async def deleted_keys(self, target: Target, scan_id: int) -> set[str]:
        cond, args = within(target.id)
        rows = await self._all(
            f"SELECT key FROM verdicts WHERE {cond} AND deleted_scan = ? "
            f"UNION SELECT key FROM failures WHERE {cond} AND deleted_scan = ?",
            (*args, scan_id, *args, scan_id),
        )
        return {r[0] for r in rows}


def utc_day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))
