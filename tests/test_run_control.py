"""Run control and the numbers around a scan: --force, rates, exit codes, report rows, filters.

Each test names the defect it guards (all reproduced on the code before this change).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.cli.commands import EXIT_CODES
from scanner.cli.parser import build_parser
from tests.helpers import cli_config as cfg
from tests.helpers import emulator_process, one_line, stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with emulator_process("--objects", "599", "--seed", "4") as url:
        # one image the service cannot decode (a final per-image failure)
        body = json.dumps({"put": {"zz/corrupt-1.jpg": {"size": 5000}}}).encode()
        req = urllib.request.Request(url + "/_emulator/objects", body, method="POST")
        urllib.request.urlopen(req, timeout=5).close()
        yield url


def edit(config: Path, old: str, new: str) -> None:
    config.write_text(config.read_text().replace(old, new))


def rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main(["report", "--format", "jsonl", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


# -- item 4: --force starts a new scan; no rate from nothing -------------------------------


def test_force_abandons_an_unfinished_scan(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(cfg(tmp_path, emulator))
    assert main(["scan", "--config", config, "--max-images", "50"]) == 4  # paused
    assert main(["scan", "--config", config, "--force"]) in (0, 3)
    capsys.readouterr()
    assert main(["status", "--config", config, "--json"]) == 0
    newest, paused = json.loads(capsys.readouterr().out)[:2]
    assert (newest["scan_id"], paused["scan_id"]) == (2, 1)  # a new scan, not a resume
    assert paused["state"] == "abandoned"
    assert newest["state"] == "done"
    assert newest["listed"] == 600


def test_no_rate_from_nothing(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(cfg(tmp_path, emulator))
    assert main(["scan", "--config", config]) in (0, 3)
    capsys.readouterr()
    assert main(["scan", "--config", config]) == 0  # nothing to do
    out = capsys.readouterr().out
    assert "this run  nothing audited" in out
    assert "images/s" not in out  # was "155388.0 images/s" for zero images


# -- item 5: exit codes --------------------------------------------------------------------


def test_exit_code_table_is_in_readme_and_help() -> None:
    readme = (ROOT / "README.md").read_text()
    helptext = build_parser().format_help()
    for code, meaning in EXIT_CODES:
        assert f"| {code} |" in readme, code
        assert f"{code:>3}  {meaning}" in helptext


def test_exit_0_done(emulator: str, tmp_path: Path, creds: None) -> None:
    config = cfg(tmp_path, emulator)
    edit(config, "[cos]\n", '[cos]\nprefix = "albums/u0001/"\n')
    assert main(["scan", "--config", str(config)]) == 0


def test_exit_3_done_with_failed_images(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # the album holds keys the service fails (gone, corrupt, ...); they were exit 0 before
    assert main(["scan", "--config", str(cfg(tmp_path, emulator))]) == 3
    line = one_line(capsys.readouterr().err)
    assert "images failed" in line
    assert "--retry-failed" in line


def test_exit_4_paused(emulator: str, tmp_path: Path, creds: None) -> None:
    assert main(["scan", "--config", str(cfg(tmp_path, emulator)), "--max-images", "10"]) == 4


def test_exit_1_failed_and_2_usage(emulator: str, tmp_path: Path, creds: None) -> None:
    refused = "http://127.0.0.1:9"  # nothing listens: the scan fails, run it again later
    assert main(["scan", "--config", str(cfg(tmp_path, refused))]) == 1
    assert main(["scan", "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["scan", "--config", str(cfg(tmp_path, emulator, bucket="no-1250000000"))]) == 2


def test_exit_77_auth(
    emulator: str, tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "wrong")
    assert main(["scan", "--config", str(cfg(tmp_path, emulator))]) == 77


def test_exit_75_lease_held(emulator: str, tmp_path: Path, creds: None) -> None:
    config = str(cfg(tmp_path, emulator))
    assert main(["migrate", "--config", config]) == 0
    with sqlite3.connect(tmp_path / "s.db") as db:  # a live holder: this very process
        now = time.time()
        db.execute(
            "INSERT INTO leases VALUES (?, 'other', ?, ?, ?, ?, 1)",
            ("cos://album-1250000000.ap-guangzhou/", socket.gethostname(), os.getpid(), now, now),
        )
    assert main(["scan", "--config", config]) == 75


# 130 (interrupted) is sent a real SIGINT in tests/test_scan_process.py.


# -- item 3: report rows and history; item 6: filters --------------------------------------


def test_report_one_row_per_key_after_a_policy_change(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cfg(tmp_path, emulator)
    edit(config, "[audit]\n", "[audit]\nlarge_image_detect = true\n")
    main(["scan", "--config", str(config)])
    before = stats(emulator)["audited_images"]
    edit(config, "large_image_detect = true", "large_image_detect = false")
    main(["scan", "--config", str(config), "--incremental"])
    assert stats(emulator)["audited_images"] == before  # nothing re-audited by turning it off
    capsys.readouterr()
    got = rows(capsys, "--config", str(config))
    keys = [r["key"] for r in got]
    assert len(keys) == len(set(keys)) == 600  # was 600 + the large images, twice each
    # a GIF option re-audits only GIFs; --history shows the verdicts they replaced
    edit(config, "[audit]\n", "[audit]\nmax_frames = 3\n")
    main(["scan", "--config", str(config), "--incremental"])
    regifs = stats(emulator)["audited_images"] - before
    capsys.readouterr()
    old = [r for r in rows(capsys, "--config", str(config), "--history")
           if r["state"] == "superseded"]  # fmt: skip
    assert regifs == len(old) > 0
    assert all(str(r["key"]).lower().endswith(".gif") for r in old)


def test_policy_version_re_audits_everything(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cfg(tmp_path, emulator)
    main(["scan", "--config", str(config)])
    first = stats(emulator)["audited_images"]
    main(["scan", "--config", str(config), "--incremental"])
    assert stats(emulator)["audited_images"] == first
    edit(config, "[audit]\n", '[audit]\npolicy_version = "2026-12 dictionary"\n')
    main(["scan", "--config", str(config), "--incremental"])
    again = stats(emulator)["audited_images"] - first
    capsys.readouterr()
    audited = [r for r in rows(capsys, "--config", str(config)) if r["state"] == "audited"]
    assert again == len(audited) > 400


def test_labels_any_case_unknown_refused_results_checked(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(cfg(tmp_path, emulator))
    main(["scan", "--config", config])
    capsys.readouterr()
    porn = rows(capsys, "--config", config, "--label", "porn")  # was 0 rows: the API says Porn
    assert porn
    assert all(r["label"] == "Porn" for r in porn)
    assert main(["report", "--config", config, "--label", "nudity"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--label: unknown ['nudity']" in line
    assert "Porn" in line
    assert main(["report", "--config", config, "--result", "3"]) == 2  # was 0 rows, exit 0
    assert "--result" in one_line(capsys.readouterr().err)


def test_global_options_before_or_after_the_command(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(cfg(tmp_path, emulator))
    main(["scan", "--config", config])
    capsys.readouterr()
    assert main(["--config", config, "-v", "status", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["status", "--json", "--config", config, "-v"]) == 0
    assert json.loads(capsys.readouterr().out) == before
    assert main(["--store", str(tmp_path / "s.db"), "report", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 600


def test_status_eta_while_listing_from_the_last_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "eta.db"
    assert main(["migrate", "--store", str(db)]) == 0
    now = time.time()
    target = "cos://album-1250000000.ap-guangzhou/"
    with sqlite3.connect(db) as conn:
        columns = (
            "target, bucket, region, prefix, mode, policy, state, listing_done, listed, "
            "audited, skipped, started_at, updated_at, finished_at, run_started_at, run_audited"
        )
        conn.execute(
            f"INSERT INTO scans ({columns}) VALUES (?, 'b', 'r', '', 'full', 'p', 'done', 1, "
            "1000, 990, 10, ?, ?, ?, ?, 990)",
            (target, now - 9000, now - 8000, now - 8000, now - 9000),
        )
        conn.execute(  # still listing: 300 listed of the ~1000 last time, 200 audited in 100 s
            f"INSERT INTO scans ({columns}) VALUES (?, 'b', 'r', '', 'incremental', 'p', "
            "'running', 0, 300, 200, 0, ?, ?, NULL, ?, 200)",
            (target, now - 100, now, now - 100),
        )
        conn.execute(  # held by a live process (this one): running, not dead
            "INSERT INTO leases (target, owner, host, pid, acquired_at, heartbeat_at) "
            "VALUES (?, 'o', ?, ?, ?, ?)",
            (target, socket.gethostname(), os.getpid(), now - 100, now),
        )
    capsys.readouterr()
    assert main(["status", "--store", str(db), "--json"]) == 0
    running, _done = json.loads(capsys.readouterr().out)
    assert running["state"] == "running"
    assert running["eta_estimated"] is True
    assert 380 <= running["eta"] <= 420  # (1000 - 200) / 2 per s
    assert main(["status", "--store", str(db)]) == 0
    assert " ~6m" in capsys.readouterr().out  # marked as an estimate in the table
