"""scan / status / migrate through main(): outputs, exit codes, one-line errors, intact store."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.cli import EXIT_AUTH, main
from scanner.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from tests.helpers import cli_config as cfg
from tests.helpers import emulator_process, one_line, stats


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with emulator_process("--objects", "400", "--seed", "9") as url:
        yield url


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_scan_then_status_json_and_table(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cfg(tmp_path, emulator)
    assert main(["scan", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "scan 1 of cos://album-1250000000.ap-guangzhou/: done" in out
    assert main(["status", "--config", str(config), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] == "done"
    assert row["listed"] == 400
    assert row["listed"] == row["audited"] + row["failed"] + row["skipped"]
    assert row["pending"] == 0
    assert main(["status", "--store", str(tmp_path / "s.db")]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:5] == ["scan", "state", "mode", "started", "listed"]
    assert " done " in table
    assert main(["scan", "--config", str(config)]) == 0
    again = capsys.readouterr().out
    assert "finished earlier" in again
    assert "scan --incremental" in again  # what to run for what changed since: never "nothing"
    assert "nothing to" not in again


def test_dry_run_writes_and_bills_nothing(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = stats(emulator)
    assert main(["scan", "--config", str(cfg(tmp_path, emulator)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "objects               400" in out
    assert "3 scene(s) per image" in out
    assert "at [audit] unit_price 0.01" in out
    assert not (tmp_path / "s.db").exists()
    after = stats(emulator)
    assert after["requests"].get("audit", 0) == before["requests"].get("audit", 0)


def test_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--store", str(tmp_path / "m.db")]) == 0
    assert "schema version 14" in capsys.readouterr().out


def test_wrong_key_is_one_line_exit_auth_store_valid(
    emulator: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "not-the-key")
    assert main(["scan", "--config", str(cfg(tmp_path, emulator))]) == EXIT_AUTH
    line = one_line(capsys.readouterr().err)
    assert "SignatureDoesNotMatch" in line
    assert "request id" in line
    assert "not-the-key" not in line
    assert integrity(tmp_path / "s.db") == "ok"
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT state FROM scans").fetchall() == [("failed",)]


def test_missing_bucket(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", "--config", str(cfg(tmp_path, emulator, bucket="gone-1250000000"))]) == 2
    assert (
        "bucket gone-1250000000 not found in region ap-guangzhou: check [cos] bucket and "
        "region" in one_line(capsys.readouterr().err)
    )


def test_unreachable_endpoint(
    tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["scan", "--config", str(cfg(tmp_path, f"http://127.0.0.1:{port}"))]) == 1
    assert "cannot connect to 127.0.0.1" in one_line(capsys.readouterr().err)


def test_unwritable_store(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "no" / "such" / "dir" / "s.db")
    assert main(["scan", "--config", str(cfg(tmp_path, emulator, store=store))]) == 1
    assert "is not a directory" in one_line(capsys.readouterr().err)


def test_missing_config_and_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY", raising=False)
    assert main(["scan", "--config", str(tmp_path / "nope.toml")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "does not exist" in line
    assert "TENCENTCLOUD_SECRET_ID" in line
    assert main(["scan", "--max-images", "0"]) == 2
    assert "--max-images must be >= 1" in one_line(capsys.readouterr().err)


def test_status_without_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--store", str(tmp_path / "none.db")]) == 1
    assert "no store at" in one_line(capsys.readouterr().err)


def test_json_logs_and_summary_file(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cfg(tmp_path, emulator)
    summary = tmp_path / "summary.json"
    assert (
        main(["--log-format", "json", "scan", "--config", str(config), "--summary", str(summary)])
        == 0
    )
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "scan_start"
    assert kinds[-1] == "scan_finish"
    finish = events[-1]
    assert finish["listed"] == finish["audited"] + finish["failed"] + finish["skipped"]
    written = json.loads(summary.read_text())
    assert written["scan_id"] == finish["scan_id"]
    assert written["outcome"] == "done"


def test_json_log_format_is_pure_json_lines(emulator: str, tmp_path: Path) -> None:
    # what the cron line appends to its log: stdout and stderr together, one object per line
    import os
    import subprocess
    import sys

    env = dict(os.environ, TENCENTCLOUD_SECRET_ID=DEFAULT_SECRET_ID,
               TENCENTCLOUD_SECRET_KEY=DEFAULT_SECRET_KEY)  # fmt: skip
    argv = [sys.executable, "-m", "scanner", "--log-format", "json", "scan", "--config",
            str(cfg(tmp_path, emulator)), "--max-images", "50"]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4  # paused: also an error line on stderr, as JSON
    lines = (done.stdout + done.stderr).splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    (run,) = [e for e in events if e.get("event") == "run"]
    assert run["exit_code"] == 4
    assert run["end"] >= run["start"]
    assert run["summary"]["outcome"] == "paused"
    assert any(e.get("event") == "error" and "paused" in e["message"] for e in events)
