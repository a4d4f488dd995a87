"""Forward-only numbered migrations, recorded in PRAGMA user_version.

Each `migrations/NNNN_name.sql` runs as `BEGIN; <file>; PRAGMA user_version = N; COMMIT;`, so
a change and its record land together, and a failing file rolls back and stays pending. This
is the only module that knows where the migration files live.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import aiosqlite

from scanner.errors import MigrationError, StoreError
from scanner.models import content_key

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations_dir() -> Path:
    """The shipped migrations: `scanner/store/migrations` (a link to the top-level folder in a
    checkout, a copy in the wheel)."""
    return Path(__file__).resolve().parent / "migrations"


def content_hash(scope: str, etag: str, size: int) -> int | None:
    """The key of an object's bytes in a bucket in the `contents` table: 64 bits of BLAKE2b
    over the bucket's id and `content_key` (None: the object shares no verdict). Stored, so
    fixed for ever; a collision only costs a lookup (the verdict's ETag and size decide)."""
    content = content_key(etag, size)
    if content is None:
        return None
    digest = hashlib.blake2b(f"{scope}\0{content}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def register_functions(conn: aiosqlite.Connection) -> None:
    """The SQL functions the schema and its queries use: `content_hash(target, etag, size)`,
    and `key_user(key, stored)`, a verdict's uploader (the stored one until `Store.name_users`
    applies `[scan] user_from_key`). Once per connection (SQLite refuses to redefine one while
    a statement is open)."""
    try:
        async with conn.execute("SELECT content_hash('', '', 0)"):
            return
    except sqlite3.OperationalError:
        await conn.create_function("content_hash", 3, content_hash, deterministic=True)
        await conn.create_function("key_user", 2, _stored_user, deterministic=True)


def _stored_user(_key: str, stored: str | None) -> str | None:
    return stored


def available(directory: Path | None = None) -> list[tuple[int, Path]]:
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if match:
            found.append((int(match[1]), path))
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise MigrationError(f"migrations in {directory} are not numbered 1..N: {numbers}")
    return found


def latest_version(directory: Path | None = None) -> int:
    return len(available(directory))


async def current_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def apply_migrations(conn: aiosqlite.Connection, directory: Path | None = None) -> list[int]:
    """Apply pending migrations in order; returns the versions applied."""
    await register_functions(conn)
    steps = available(directory)
    version = await current_version(conn)
    if version > len(steps):
        raise StoreError(
            f"the store has schema version {version}, newer than this cos-scanner knows "
            f"({len(steps)}); upgrade cos-scanner"
        )
    applied = []
    for number, path in steps[version:]:
        script = path.read_text(encoding="utf-8")
        try:
            await conn.executescript(f"BEGIN;\n{script}\n;PRAGMA user_version = {number};\nCOMMIT;")
        except sqlite3.Error as exc:
            await conn.execute("ROLLBACK") if conn.in_transaction else None
            raise MigrationError(
                f"migration {path.name} failed and was rolled back: {exc}"
            ) from exc
        applied.append(number)
    return applied
