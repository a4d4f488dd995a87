"""The store's connection: opening (and migrating), one-transaction writes, reads, closing.

One aiosqlite connection in WAL mode with synchronous=FULL. Every write is one transaction
under a lock, shielded from cancellation, so a commit either lands whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiosqlite
import anyio

from scanner.errors import ConfigError, StoreError
from scanner.models import key_range, split_target
from scanner.store.migrate import (
    apply_migrations,
    current_version,
    latest_version,
    register_functions,
)


def _uri(where: str, readonly: bool, immutable: bool = False) -> str:
    path = Path(where)
    if readonly and not path.exists():
        raise StoreError(f"no store at {where!r} (run a scan first)")
    if not readonly and not path.parent.is_dir():
        raise StoreError(f"cannot create store {where!r}: {str(path.parent)!r} is not a directory")
    mode = "ro" if readonly else "rwc"
    return f"file:{quote(str(path.resolve()))}?mode={mode}{'&immutable=1' if immutable else ''}"


def within(target_id: str, alias: str = "") -> tuple[str, list[Any]]:
    """SQL condition (and its arguments) for the rows of a target's keys in a per-bucket table
    (verdicts, failures, their history, acted): the bucket's rows under the target's prefix."""
    scope, prefix = split_target(target_id)
    lo, hi = key_range(prefix)
    a = f"{alias}." if alias else ""
    return f"{a}target = ? AND {a}key >= ? AND {a}key < ?", [scope, lo, hi]


#: `x IN {IN_JSON}` with one parameter, a JSON array: the statement's text is the same for
#: any number of values. A `?` per value made each length a statement of its own, and the
#: connection's cache of 128 prepared statements held ~15 MB of them during a scan.
IN_JSON = "(SELECT value FROM json_each(?))"


#: The tables that grow, with their primary keys.
_GROWING = (
    ("scans", "id"),
    ("scan_objects", "scan_id, key"),
    ("verdicts", "target, key"),
    ("failures", "target, key"),
    ("contents", "h, key"),
)
#: Their first and last rows, in primary key order.
_EDGES = tuple(
    f"SELECT * FROM {table} ORDER BY {order} LIMIT 1"
    for table, key in _GROWING
    for order in (key, ", ".join(f"{k} DESC" for k in key.split(", ")))
)


def _truncated(path: str) -> str:
    """Why the database file is shorter than its header says ("" when it is not): the header's
    page count is valid when its version-valid-for number equals the change counter."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return ""  # not a plain file (":memory:", a URI): SQLite has opened it, nothing to add
    if len(header) < 100 or header[92:96] != header[24:28]:
        return ""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if size < pages * page_size:
        return f"{size:,} bytes where its header says {pages * page_size:,}"
    return ""


def _refuse_empty(where: str) -> None:
    """An empty file where a store should be (a copy that failed, a `touch`): refused. (In WAL
    mode a store's main file can be empty while its data is in the -wal file beside it.)"""
    path = Path(where)
    if path.is_file() and path.stat().st_size == 0 and not Path(where + "-wal").exists():
        raise ConfigError(
            f"store {where!r} is an empty file, not a cos-scanner store: a scan would start "
            "over and bill the bucket again; remove it, or run `cos-scanner migrate` to make "
            "it a new store"
        )


@dataclass
class HeldClaims:
    """What this process's scans keep in memory while each is its bucket's only live scan
    (store/sharing.py): their claims, and the `contents` rows of their new verdicts."""

    private: dict[str, tuple[str, set[str]]] = field(default_factory=dict)  # owner -> scope, claims
    published: set[str] = field(default_factory=set)  # owners whose claims are rows
    leased: set[str] = field(default_factory=set)  # owners holding a lease through this store
    #: owner -> content_hash -> keys: new `contents` rows a scan alone keeps until it flushes
    contents: dict[str, dict[int, list[str]]] = field(default_factory=dict)


class StoreBase:
    """The connection, its transactions and lifecycle: what every table family builds on."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._lock = anyio.Lock()
        self._claims = HeldClaims()

    @classmethod
    async def open(
        cls, path: str | Path, *, migrate: bool = True, readonly: bool = False, adopt: bool = False
    ) -> Self:
        """Open (creating unless `readonly`) the store at `path` and apply migrations.

        An existing file that is not a store (an empty file, another program's database) is
        refused rather than silently made a new, empty store (which re-bills a bucket), unless
        `adopt` (`cos-scanner migrate`). Read-only, a store on read-only media (a backup, a
        read-only volume) cannot get the WAL index file SQLite wants beside it: it is then
        opened immutable, without WAL."""
        if not readonly:
            if not adopt:
                _refuse_empty(str(path))
            return await cls._open(str(path), migrate=migrate, readonly=False, adopt=adopt)
        try:
            return await cls._open(str(path), migrate=False, readonly=True)
        except StoreError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
            return await cls._open(str(path), migrate=False, readonly=True, immutable=True)

    @classmethod
    async def _open(
        cls, where: str, *, migrate: bool, readonly: bool, immutable: bool = False,
        adopt: bool = True,
    ) -> Self:  # fmt: skip
        uri = _uri(where, readonly, immutable)
        try:
            conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {where!r}: {exc}") from exc
        store = cls(conn, where)
        try:
            await register_functions(conn)
            await store._setup(migrate=migrate and not readonly, readonly=readonly, adopt=adopt)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return store

    async def _pragma(self, setting: str) -> None:
        """Set a PRAGMA and close its cursor (an open one would keep a statement active, and
        SQLite refuses to define functions, `name_users`, while one is)."""
        async with self._conn.execute(f"PRAGMA {setting}"):
            pass

    async def _setup(self, *, migrate: bool, readonly: bool, adopt: bool = True) -> None:
        if truncated := _truncated(self.path):  # before anything reads it
            raise self._damaged(truncated)
        try:
            await self._pragma("busy_timeout = 10000")
            version = await current_version(self._conn)
            if migrate and version == 0 and not adopt:
                async with self._conn.execute("SELECT COUNT(*) FROM sqlite_master") as cur:
                    (tables,) = await cur.fetchone() or (0,)
                if tables:
                    raise ConfigError(
                        f"store {self.path!r} is another program's SQLite database, not a "
                        "cos-scanner store: give [store] path a file of its own"
                    )
            if not readonly:
                await self._pragma("journal_mode = WAL")
            await self._pragma("synchronous = FULL")
            # Checkpoint every 16,000 pages (64 MB of WAL) instead of 1,000: a page a scan
            # rewrites in many commits (an index's) is copied to the database once per
            # checkpoint, not once per few commits (100,000 objects: 0.90 -> 0.60 GB written).
            await self._pragma("wal_autocheckpoint = 16000")
            if migrate:
                await apply_migrations(self._conn)
            elif version != latest_version():
                raise StoreError(
                    f"store {self.path!r} has schema version {version}, this cos-scanner needs "
                    f"{latest_version()}: run `cos-scanner migrate`"
                )
            if version == latest_version():
                await self._quick_check()
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc):
                raise self._damaged(str(exc)) from exc
            raise StoreError(f"store {self.path!r} is not usable: {exc}") from exc

    def _damaged(self, why: str) -> StoreError:
        return StoreError(
            f"store {self.path!r} is damaged ({why}): restore it from a backup, or salvage "
            f"it with `sqlite3 {self.path} .recover`; nothing was changed"
        )

    async def _quick_check(self) -> None:
        """Signs of damage, in milliseconds at any size (PRAGMA quick_check reads every page:
        minutes at 10^8 objects): a file shorter than its header says (a copy cut short), and
        the first and last rows of the tables that grow (the edges of their B-trees)."""
        try:
            for sql in _EDGES:
                async with self._conn.execute(sql) as cur:
                    await cur.fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._damaged(str(exc)) from exc

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._conn.close()

    async def __aenter__(self) -> Self:
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

    async def rows_of_keys(self, sql: str, args: list[Any], keys: Sequence[str]) -> list[Any]:
        """Rows of `sql` (whose WHERE takes `args`) for a page's `keys` (sorted): one range
        scan when the page is a slice of the key order (a listing), else lookups by key (an
        Inventory's rows need not be in order: the range could hold most of the bucket)."""
        cap = 2 * len(keys) + 16
        rows = await self._all(
            f"{sql} AND key BETWEEN ? AND ? LIMIT ?", [*args, keys[0], keys[-1], cap]
        )
        if len(rows) < cap:
            return rows
        out: list[Any] = []
        for n in range(0, len(keys), 1000):
            part = keys[n : n + 1000]
            out += await self._all(f"{sql} AND key IN {IN_JSON}", [*args, json.dumps(part)])
        return out

    async def version(self) -> int:
        return await current_version(self._conn)
