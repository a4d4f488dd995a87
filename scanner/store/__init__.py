"""The store: SQLite checkpoints and verdicts. The only package that speaks SQL.

One aiosqlite connection in WAL mode with synchronous=FULL. Every write is one transaction
under a lock, shielded from cancellation, so a commit either lands whole or not at all:
- `record_page`: a listed page's objects (pending or skipped) and the next marker together;
- `record_results`: a group of audit outcomes, their verdicts upserted, counters updated.
The counters in `scans` change only in the same transactions as the rows they count.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiosqlite
import anyio

from scanner.errors import ScanBusyError, StoreError
from scanner.models import Decision, ImageVerdict, ObjectRef, Result, ScanStatus, Target
from scanner.store.migrate import apply_migrations, current_version, latest_version

_SCAN_COLUMNS = (
    "id, target, mode, policy, state, marker, listing_done, listed, audited, flagged, review, "
    "failed, skipped, requests, error, started_at, updated_at, finished_at, run_started_at, "
    "run_audited, deleted"
)
_UPSERT_VERDICT = """
INSERT INTO verdicts (target, key, etag, size, policy, result, label, score, category, sub_label,
                      text, job_id, raw, audited_at, scan_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target, key) DO UPDATE SET
    etag = excluded.etag, size = excluded.size, policy = excluded.policy,
    result = excluded.result, label = excluded.label, score = excluded.score,
    category = excluded.category, sub_label = excluded.sub_label, text = excluded.text,
    job_id = excluded.job_id, raw = excluded.raw, audited_at = excluded.audited_at,
    scan_id = excluded.scan_id, deleted_scan = NULL
"""
_UPSERT_FAILURE = """
INSERT INTO failures (target, key, etag, size, last_modified, storage_class, policy, code,
                      message, retryable, scan_id, failed_at)
SELECT ?, key, etag, size, last_modified, storage_class, ?, COALESCE(reason, ''),
       COALESCE(message, ''), ?, scan_id, ?
FROM scan_objects WHERE scan_id = ? AND key = ?
ON CONFLICT (target, key) DO UPDATE SET
    etag = excluded.etag, size = excluded.size, last_modified = excluded.last_modified,
    storage_class = excluded.storage_class, policy = excluded.policy, code = excluded.code,
    message = excluded.message, retryable = excluded.retryable, scan_id = excluded.scan_id,
    failed_at = excluded.failed_at, deleted_scan = NULL
"""
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


def _status(row: Sequence[Any]) -> ScanStatus:
    values = list(row)
    values[6] = bool(values[6])
    return ScanStatus(*values)


def _ref(row: Sequence[Any]) -> ObjectRef:
    return ObjectRef(row[0], row[1], row[2], datetime.fromisoformat(row[3]), row[4])


def _uri(where: str, readonly: bool) -> str:
    path = Path(where)
    if readonly and not path.exists():
        raise StoreError(f"no store at {where!r} (run a scan first)")
    if not readonly and not path.parent.is_dir():
        raise StoreError(f"cannot create store {where!r}: {str(path.parent)!r} is not a directory")
    return f"file:{quote(str(path.resolve()))}?mode={'ro' if readonly else 'rwc'}"


class Store:
    """Checkpoints and verdicts in one SQLite file; an async context manager."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: str | Path, *, migrate: bool = True, readonly: bool = False) -> Store:
        """Open (creating unless `readonly`) the store at `path` and apply migrations."""
        where = str(path)
        uri = _uri(where, readonly)
        try:
            conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {where!r}: {exc}") from exc
        store = cls(conn, where)
        try:
            await store._setup(migrate=migrate and not readonly, readonly=readonly)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return store

    async def _setup(self, *, migrate: bool, readonly: bool) -> None:
        try:
            await self._conn.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                await self._conn.execute("PRAGMA journal_mode = WAL")
            await self._conn.execute("PRAGMA synchronous = FULL")
            version = await current_version(self._conn)
            if migrate:
                await apply_migrations(self._conn)
            elif version != latest_version():
                raise StoreError(
                    f"store {self.path!r} has schema version {version}, this cos-scanner needs "
                    f"{latest_version()}: run `cos-scanner migrate`"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store {self.path!r} is not usable: {exc}") from exc

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, whole or not at all, never cut by cancellation."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                try:
                    await self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self._conn
                    except BaseException:
                        await self._conn.execute("ROLLBACK")
                        raise
                    await self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise StoreError(f"store {self.path!r}: {exc}") from exc

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        try:
            async with self._conn.execute(sql, tuple(args)) as cur:
                return await cur.fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path!r}: {exc}") from exc

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        try:
            async with self._conn.execute(sql, tuple(args)) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path!r}: {exc}") from exc

    # -- leases ---------------------------------------------------------------------------

    async def acquire_lease(
        self,
        target: Target,
        owner: str,
        *,
        host: str,
        pid: int,
        stale_after: float,
        is_dead: Callable[[str, int], bool],
    ) -> None:
        """Take the target's lease, or raise ScanBusyError naming the live holder."""
        now = time.time()
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT owner, host, pid, heartbeat_at FROM leases WHERE target = ?", (target.id,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] != owner:
                held_host, held_pid, beat = row[1], int(row[2]), float(row[3])
                if now - beat < stale_after and not is_dead(held_host, held_pid):
                    raise ScanBusyError(
                        f"{target.id} is being scanned by pid {held_pid} on {held_host} "
                        f"(heartbeat {now - beat:.0f}s ago); not starting a second scan"
                    )
            await conn.execute(
                "INSERT INTO leases (target, owner, host, pid, acquired_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
                "owner = excluded.owner,"
                " host = excluded.host, pid = excluded.pid, acquired_at = excluded.acquired_at,"
                " heartbeat_at = excluded.heartbeat_at",
                (target.id, owner, host, pid, now, now),
            )

    async def heartbeat(self, target: Target, owner: str) -> bool:
        """Refresh the lease; False if someone else holds it now."""
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE leases SET heartbeat_at = ? WHERE target = ? AND owner = ?",
                (time.time(), target.id, owner),
            )
            return cur.rowcount == 1

    async def release_lease(self, target: Target, owner: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "DELETE FROM leases WHERE target = ? AND owner = ?", (target.id, owner)
            )

    # -- scans ----------------------------------------------------------------------------

    async def latest_scan(self, target: Target) -> ScanStatus | None:
        row = await self._one(
            f"SELECT {_SCAN_COLUMNS} FROM scans WHERE target = ? ORDER BY id DESC LIMIT 1",
            (target.id,),
        )
        return _status(row) if row else None

    async def scan(self, scan_id: int) -> ScanStatus:
        row = await self._one(f"SELECT {_SCAN_COLUMNS} FROM scans WHERE id = ?", (scan_id,))
        if row is None:
            raise StoreError(f"no scan {scan_id} in {self.path!r}")
        return _status(row)

    async def scans(self, limit: int = 20) -> list[ScanStatus]:
        rows = await self._all(
            f"SELECT {_SCAN_COLUMNS} FROM scans ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_status(r) for r in rows]

    async def start_scan(self, target: Target, policy: str, mode: str = "full") -> ScanStatus:
        """A new running scan of `target`."""
        now = time.time()
        async with self._tx() as conn:
            cur = await conn.execute(
                "INSERT INTO scans (target, bucket, region, prefix, mode, policy, state, "
                "started_at, updated_at, run_started_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
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

    # -- listing --------------------------------------------------------------------------

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

    # -- results --------------------------------------------------------------------------

    async def record_results(
        self,
        scan_id: int,
        target: Target,
        policy: str,
        outcomes: Sequence[tuple[ObjectRef, ImageVerdict]],
        *,
        requests: int,
        max_attempts: int,
    ) -> None:
        """Record audit outcomes in one transaction.

        A verdict marks the object audited and upserts the target's verdict for the key. A
        final failure, or a retryable one on its `max_attempts`-th attempt, marks it failed;
        other retryable failures leave it pending with the code, for a later pass.
        """
        now = time.time()
        groups: dict[str, list[tuple[Any, ...]]] = {"ok0": [], "ok1": [], "ok2": [], "failed": []}
        retry: list[tuple[Any, ...]] = []
        verdicts = []
        for ref, v in outcomes:
            if not v.failed and v.result is not None:
                groups[f"ok{int(v.result)}"].append(("audited", None, None, scan_id, ref.key))
                verdicts.append(
                    (
                        target.id,
                        ref.key,
                        ref.etag,
                        ref.size,
                        policy,
                        int(v.result),
                        v.label,
                        v.score,
                        v.category,
                        v.sub_label,
                        v.text,
                        v.job_id,
                        pack_raw(v.raw),
                        now,
                        scan_id,
                    )
                )
            elif v.retryable:
                retry.append((v.code, v.message, scan_id, ref.key, max_attempts))
            else:
                groups["failed"].append(("failed", v.code, v.message, scan_id, ref.key))
        async with self._tx() as conn:
            counts = {}
            for name, rows in groups.items():
                counts[name] = (await conn.executemany(_MARK, rows)).rowcount if rows else 0
            if retry:
                counts["failed"] += (await conn.executemany(_SPENT, retry)).rowcount
                await conn.executemany(_LATER, retry)
            if verdicts:
                await conn.executemany(_UPSERT_VERDICT, verdicts)
                await conn.executemany(
                    "DELETE FROM failures WHERE target = ? AND key = ?",
                    [(target.id, v[1]) for v in verdicts],
                )
            final = [(target.id, policy, 0, now, scan_id, row[4]) for row in groups["failed"]]
            final += [(target.id, policy, 1, now, scan_id, row[3]) for row in retry]
            await conn.executemany(  # only rows that ended failed are copied
                _UPSERT_FAILURE.replace(
                    "WHERE scan_id = ? AND key = ?",
                    "WHERE scan_id = ? AND key = ? AND state = 'failed'",
                ),
                final,
            )
            audited = counts["ok0"] + counts["ok1"] + counts["ok2"]
            await conn.execute(
                "UPDATE scans SET audited = audited + ?, flagged = flagged + ?, "
                "review = review + ?, failed = failed + ?, requests = requests + ?, "
                "run_audited = run_audited + ?, updated_at = ? WHERE id = ?",
                (
                    audited,
                    counts["ok1"],
                    counts["ok2"],
                    counts["failed"],
                    requests,
                    audited,
                    now,
                    scan_id,
                ),
            )

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
                _UPSERT_FAILURE.replace(
                    "WHERE scan_id = ? AND key = ?",
                    "WHERE scan_id = ? AND state = 'failed' AND reason = ?",
                ),
                (target.id, policy, 1, time.time(), scan_id, code),
            )

    # -- incremental ----------------------------------------------------------------------

    async def priors(self, target: Target, first: str, last: str) -> dict[str, Prior]:
        """What the store knows of keys first..last of a target: last verdict or failure."""
        found: dict[str, Prior] = {}
        for row in await self._all(
            "SELECT key, etag, size, policy FROM verdicts WHERE target = ? AND key BETWEEN ? AND ?",
            (target.id, first, last),
        ):
            found[row[0]] = Prior(row[1], int(row[2]), row[3], failed=False, retryable=False)
        for row in await self._all(
            "SELECT key, etag, size, policy, retryable FROM failures "
            "WHERE target = ? AND key BETWEEN ? AND ?",
            (target.id, first, last),
        ):
            found[row[0]] = Prior(row[1], int(row[2]), row[3], failed=True, retryable=bool(row[4]))
        return found

    async def mark_deleted(self, scan_id: int, target: Target) -> int:
        """Keys of the target this (complete) scan did not list are marked deleted by it."""
        absent = (
            "target = ? AND deleted_scan IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM scan_objects o WHERE o.scan_id = ? AND o.key = {t}.key)"
        )
        seen = (
            "target = ? AND deleted_scan IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM scan_objects o WHERE o.scan_id = ? AND o.key = {t}.key)"
        )
        async with self._tx() as conn:
            gone = 0
            for table in ("verdicts", "failures"):
                cur = await conn.execute(
                    f"UPDATE {table} SET deleted_scan = ? WHERE " + absent.format(t=table),
                    (scan_id, target.id, scan_id),
                )
                gone += cur.rowcount
                await conn.execute(
                    f"UPDATE {table} SET deleted_scan = NULL WHERE " + seen.format(t=table),
                    (target.id, scan_id),
                )
            await conn.execute("UPDATE scans SET deleted = ? WHERE id = ?", (gone, scan_id))
        return gone

    async def seed_failures(self, scan_id: int, target: Target) -> int:
        """A retry-failed scan: every key whose last attempt failed becomes pending in it."""
        async with self._tx() as conn:
            cur = await conn.execute(
                "INSERT INTO scan_objects (scan_id, key, etag, size, last_modified, storage_class,"
                " state) SELECT ?, key, etag, size, last_modified, storage_class, 'pending' "
                "FROM failures WHERE target = ? AND deleted_scan IS NULL",
                (scan_id, target.id),
            )
            n = cur.rowcount
            await conn.execute(
                "UPDATE scans SET listed = ?, listing_done = 1 WHERE id = ?", (n, scan_id)
            )
        return n

    # -- reading --------------------------------------------------------------------------

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

    async def verdict_map(self, target: Target) -> dict[str, tuple[int, str, int]]:
        """key -> (result, label, score) of every verdict of a target."""
        rows = await self._all(
            "SELECT key, result, label, score FROM verdicts WHERE target = ?", (target.id,)
        )
        return {k: (Result(r).value, label, s) for k, r, label, s in rows}

    async def labels(self, scan_id: int) -> dict[str, int]:
        rows = await self._all(
            "SELECT label, COUNT(*) FROM verdicts WHERE scan_id = ? AND result > 0 "
            "GROUP BY label ORDER BY COUNT(*) DESC",
            (scan_id,),
        )
        return {str(label): int(n) for label, n in rows}

    async def version(self) -> int:
        return await current_version(self._conn)

    async def deleted_keys(self, target: Target, scan_id: int) -> set[str]:
        rows = await self._all(
            "SELECT key FROM verdicts WHERE target = ? AND deleted_scan = ? "
            "UNION SELECT key FROM failures WHERE target = ? AND deleted_scan = ?",
            (target.id, scan_id, target.id, scan_id),
        )
        return {r[0] for r in rows}

    # -- reports --------------------------------------------------------------------------

    async def targets(self) -> list[str]:
        return [r[0] for r in await self._all("SELECT DISTINCT target FROM scans ORDER BY target")]

    def _view(self, target: str, latest_scan: int, where: ReportFilter) -> tuple[str, list[Any]]:
        """The current state of every key of a target, one row each, filtered."""
        sql = f"SELECT {REPORT_COLUMNS} FROM ({_CURRENT_VIEW}) WHERE 1 = 1"
        args: list[Any] = [target, target, latest_scan]
        conds, more = where.sql()
        return sql + conds, args + more

    async def iter_report(
        self, target: str, where: ReportFilter, chunk: int = 1000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Report rows (REPORT_COLUMNS) in key order, `chunk` at a time: constant memory."""
        latest = await self._one("SELECT MAX(id) FROM scans WHERE target = ?", (target,))
        sql, args = self._view(target, int(latest[0] or 0), where)
        try:
            async with self._conn.execute(sql + " ORDER BY key", args) as cur:
                while rows := await cur.fetchmany(chunk):
                    yield [(*r[:-1], unpack_raw(r[-1])) for r in rows]
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path!r}: {exc}") from exc

    async def report_totals(self, target: str, where: ReportFilter) -> dict[str, Any]:
        """Totals of the filtered report rows by state, result, label, category and scan."""
        latest = await self._one("SELECT MAX(id) FROM scans WHERE target = ?", (target,))
        sql, args = self._view(target, int(latest[0] or 0), where)
        out: dict[str, Any] = {}
        for name, column in (
            ("by_state", "state"),
            ("by_result", "result"),
            ("by_label", "label"),
            ("by_category", "category"),
            ("by_scan", "scan_id"),
        ):
            rows = await self._all(
                f"SELECT {column}, COUNT(*) FROM ({sql}) GROUP BY {column} ORDER BY {column}", args
            )
            out[name] = {("" if k is None else str(k)): int(n) for k, n in rows}
        out["rows"] = sum(out["by_state"].values())
        return out


def pack_raw(raw: str) -> bytes | str:
    """A verdict's JobsDetail XML as stored: deflated (about a third of the size).

    Kept as text, the ~1 KB answers of a 100,000-image scan made a 460 MB store (they also
    overflow the WITHOUT ROWID pages); deflated it is 84 MB and the scan spends less CPU.
    """
    return zlib.compress(raw.encode(), 1) if raw else ""


def unpack_raw(value: bytes | str | None) -> str | None:
    """A stored raw verdict as XML text (older stores hold it as text: both read)."""
    if isinstance(value, bytes):
        try:
            return zlib.decompress(value).decode()
        except (zlib.error, UnicodeDecodeError):  # damaged: let the reader see it is not XML
            return value.decode(errors="replace")
    return value


REPORT_COLUMNS = (
    "key, etag, size, state, reason, message, result, label, score, category, sub_label, job_id, "
    "audited_at, scan_id, raw"
)
# A key's latest outcome: a failure (newer than any verdict: audits delete failures), else its
# verdict; deleted keys keep their last outcome with state 'deleted'; plus what the latest scan
# skipped for a reason other than 'unchanged'.
_CURRENT_VIEW = """
SELECT v.key, v.etag, v.size,
       CASE WHEN v.deleted_scan IS NULL THEN 'audited' ELSE 'deleted' END AS state,
       CASE WHEN v.deleted_scan IS NULL THEN NULL ELSE 'deleted' END AS reason, NULL AS message,
       v.result, v.label, v.score, v.category, v.sub_label, v.job_id, v.audited_at,
       COALESCE(v.deleted_scan, v.scan_id) AS scan_id, v.raw
FROM verdicts v WHERE v.target = ?
  AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.target = v.target AND f.key = v.key)
UNION ALL
SELECT f.key, f.etag, f.size,
       CASE WHEN f.deleted_scan IS NULL THEN 'failed' ELSE 'deleted' END, f.code, f.message,
       NULL, NULL, NULL, NULL, NULL, NULL, f.failed_at, COALESCE(f.deleted_scan, f.scan_id), NULL
FROM failures f WHERE f.target = ?
UNION ALL
SELECT o.key, o.etag, o.size, 'skipped', o.reason, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, o.scan_id, NULL
FROM scan_objects o
WHERE o.scan_id = ? AND o.state = 'skipped' AND o.reason <> 'unchanged'
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFilter:
    results: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    min_score: int | None = None
    states: tuple[str, ...] = ()
    scan_id: int | None = None
    since: float | None = None  # unix time; rows audited (or failed) at or after it

    def sql(self) -> tuple[str, list[Any]]:
        conds: list[str] = []
        args: list[Any] = []
        for column, values in (
            ("result", self.results),
            ("label", self.labels),
            ("state", self.states),
        ):
            if values:
                conds.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if self.min_score is not None:
            conds.append("score >= ?")
            args.append(self.min_score)
        if self.scan_id is not None:
            conds.append("scan_id = ?")
            args.append(self.scan_id)
        if self.since is not None:
            conds.append("audited_at >= ?")
            args.append(self.since)
        return "".join(f" AND {c}" for c in conds), args
