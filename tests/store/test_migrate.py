"""Migrations on real SQLite files: apply, idempotent, atomic, versions guarded."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from scanner.errors import MigrationError, StoreError
from scanner.store import Store
from scanner.store.migrate import (
    apply_migrations,
    content_hash,
    latest_version,
    migrations_dir,
)

TABLES = {"scans", "scan_objects", "verdicts", "leases"}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_shipped_migrations_are_the_top_level_folder() -> None:
    top = Path(__file__).resolve().parents[2] / "migrations"
    assert sorted(p.name for p in migrations_dir().glob("*.sql")) == sorted(
        p.name for p in top.glob("*.sql")
    )


async def test_apply_to_empty_then_noop(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with await Store.open(db):
        pass
    assert tables(db) >= TABLES
    assert version(db) == latest_version()
    async with aiosqlite.connect(db) as conn:
        assert await apply_migrations(conn) == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_failing_migration_rolls_back_and_stays_pending(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(migrations_dir() / "0001_initial.sql", folder)
    (folder / "0002_broken.sql").write_text(
        "CREATE TABLE extra (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    db = tmp_path / "s.db"
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        with pytest.raises(MigrationError, match=r"0002_broken\.sql failed and was rolled back"):
            await apply_migrations(conn, folder)
    assert version(db) == 1
    assert "extra" not in tables(db)
    (folder / "0002_broken.sql").write_text("CREATE TABLE extra (x INTEGER);\n")
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        assert await apply_migrations(conn, folder) == [2]
    assert "extra" in tables(db)


async def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        await Store.open(db)
    assert version(db) == 99
    assert tables(db) == {"future"}


async def test_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.write_bytes(b"this is not a database " * 100)
    with pytest.raises(StoreError, match="not usable: file is not a database"):
        await Store.open(db)
    assert db.read_bytes() == b"this is not a database " * 100


async def test_numbering_gap_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0003_c.sql").write_text("")
    async with aiosqlite.connect(tmp_path / "s.db") as conn:
        with pytest.raises(MigrationError, match="not numbered"):
            await apply_migrations(conn, tmp_path)


async def test_schema_10_indexes_the_audited_contents_of_an_older_store(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for path in sorted(migrations_dir().glob("000*.sql")):  # 1..9
        shutil.copy(path, folder)
    db = tmp_path / "s.db"
    md5 = "0cc175b9c0f1b6a831c399e269772661"
    row = (
        "INSERT INTO verdicts (target, key, etag, size, policy, result, label, score, category, "
        "sub_label, text, job_id, raw, audited_at, scan_id, verdict_from) VALUES "
        "('cos://b-1.ap-guangzhou/', ?, ?, ?, 'p', 0, '', 0, '', '', '', '', '', 1.0, 1, ?)"
    )
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        assert await apply_migrations(conn, folder) == list(range(1, 10))
        for key, tag, size, source in (
            ("a.jpg", md5, 10, None),
            ("copy.jpg", md5, 10, "a.jpg"),  # a copy's verdict: not a donor
            ("odd.jpg", "not-an-md5", 10, None),  # an ETag that shares nothing
        ):
            await conn.execute(row, (key, tag, size, source))
        assert await apply_migrations(conn) == [10, 11, 12, 13, 14]
    with sqlite3.connect(db) as conn:
        got = conn.execute("SELECT h, key FROM contents").fetchall()
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert got == [(content_hash("cos://b-1.ap-guangzhou/", md5, 10), "a.jpg")]
    assert "verdicts_by_content" not in indexes
