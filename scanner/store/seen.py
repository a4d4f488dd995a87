"""A set of strings kept on disk: what the dry run has seen, in bounded memory at any size.

A temporary SQLite file (deleted on close) holds the set; `add` says which strings are new.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Sequence
from types import TracebackType
from typing import Self


class SeenSet:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="cos-scanner-seen-")
        self._conn = sqlite3.connect(f"{self._dir.name}/seen.db", isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        self._conn.execute("CREATE TABLE seen (k BLOB PRIMARY KEY) WITHOUT ROWID")

    def add(self, items: Sequence[str]) -> list[bool]:
        """Add `items`; for each, whether it was new (a repeat within `items` is not)."""
        out = []
        self._conn.execute("BEGIN")
        for item in items:
            digest = hashlib.blake2b(item.encode(), digest_size=16).digest()
            cur = self._conn.execute("INSERT OR IGNORE INTO seen VALUES (?)", (digest,))
            out.append(cur.rowcount == 1)
        self._conn.execute("COMMIT")
        return out

    def close(self) -> None:
        self._conn.close()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
