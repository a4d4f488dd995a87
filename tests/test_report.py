"""cos-scanner report as a subprocess over a real store: csv/jsonl round-trips, totals,
filters, and presigned URLs the emulator accepts for exactly their lifetime."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from scanner.audit.raw import raw_to_dict
from scanner.config import Config
from scanner.emulator import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
    running,
    synthetic,
)
from scanner.export import FIELDS
from scanner.scan.progress import Progress
from scanner.store import unpack_raw
from tests.helpers import config, run_scan

ENV = dict(
    os.environ, TENCENTCLOUD_SECRET_ID=DEFAULT_SECRET_ID, TENCENTCLOUD_SECRET_KEY=DEFAULT_SECRET_KEY
)


@pytest.fixture
async def scanned(tmp_path: Path) -> AsyncIterator[tuple[EmulatorState, Config, Path]]:
    state = EmulatorState(bucket=synthetic(1500, 31), seed=31)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        state.faults.image_failure_rate = 0.02
        cfg_file = tmp_path / "c.toml"
        cfg_file.write_text(
            f'[cos]\nbucket = "{cfg.cos.bucket}"\nendpoint = "{url}"\n'
            f'[store]\npath = "{cfg.store.path}"\n[scan]\nmax_attempts = 1\n'
        )
        from dataclasses import replace

        cfg = replace(cfg, scan=replace(cfg.scan, max_attempts=1))
        with anyio.fail_after(60):
            await run_scan(cfg, anyio.Event(), Progress())
        state.faults.image_failure_rate = 0.0
        yield state, cfg, cfg_file


async def report(cfg_file: Path, *args: str) -> str:
    argv = [sys.executable, "-m", "scanner", "report", "--config", str(cfg_file), *args]
    done = await anyio.run_process(argv, env=ENV, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def db(cfg: Config, sql: str) -> list[Any]:
    with sqlite3.connect(cfg.store.path) as conn:
        return conn.execute(sql).fetchall()


async def test_csv_round_trips_every_verdict_field(
    scanned: tuple[EmulatorState, Config, Path],
) -> None:
    _state, cfg, cfg_file = scanned
    rows = list(csv.DictReader(io.StringIO(await report(cfg_file, "--format", "csv"))))
    assert tuple(rows[0]) == (*FIELDS, "media")
    verdicts = {
        r[0]: r
        for r in db(
            cfg,
            "SELECT key, etag, size, result, label, score, category, "
            "sub_label, job_id, scan_id FROM verdicts",
        )
    }
    audited = {r["key"]: r for r in rows if r["state"] == "audited"}
    assert set(audited) == set(verdicts)
    for key, v in verdicts.items():
        r = audited[key]
        assert (
            r["etag"],
            int(r["size"]),
            int(r["result"]),
            r["label"],
            int(r["score"]),
            r["category"],
            r["sub_label"],
            r["job_id"],
            int(r["scan_id"]),
        ) == v[1:]
        assert r["audited_at"]
    ((listed, _audited, failed, skipped),) = db(
        cfg, "SELECT listed, audited, failed, skipped FROM scans"
    )
    assert len(rows) == listed
    assert sum(r["state"] == "failed" for r in rows) == failed > 0
    assert sum(r["state"] == "skipped" for r in rows) == skipped
    assert all(r["reason"] == "-65010" for r in rows if r["state"] == "failed")


async def test_jsonl_carries_the_full_verdict(scanned: tuple[EmulatorState, Config, Path]) -> None:
    _state, cfg, cfg_file = scanned
    lines = (await report(cfg_file, "--format", "jsonl", "--state", "audited")).splitlines()
    raws = {k: unpack_raw(v) or "" for k, v in db(cfg, "SELECT key, raw FROM verdicts")}
    assert len(lines) == len(raws)
    for line in lines:
        record = json.loads(line)
        assert set(FIELDS) <= set(record)
        assert record["verdict"] == raw_to_dict(raws[record["key"]])
        assert raws[record["key"]].startswith("<JobsDetail>")
        assert record["verdict"]["Result"] == record["result"]  # an int, as the API says


async def test_json_summary_equals_store_counts(
    scanned: tuple[EmulatorState, Config, Path],
) -> None:
    _state, cfg, cfg_file = scanned
    summary = json.loads(await report(cfg_file, "--format", "json"))
    ((sid, audited, flagged, review, failed, skipped),) = db(
        cfg, "SELECT id, audited, flagged, review, failed, skipped FROM scans"
    )
    assert summary["by_state"] == {"audited": audited, "failed": failed, "skipped": skipped}
    assert summary["by_result"]["1"] == flagged
    assert summary["by_result"]["2"] == review
    assert summary["by_result"]["0"] == audited - flagged - review
    assert summary["by_scan"] == {str(sid): audited + failed + skipped}
    labels = dict(db(cfg, "SELECT label, COUNT(*) FROM verdicts GROUP BY label"))
    assert {k: v for k, v in summary["by_label"].items() if k} == labels


async def test_filters(scanned: tuple[EmulatorState, Config, Path]) -> None:
    _state, cfg, cfg_file = scanned
    flagged = list(
        csv.DictReader(io.StringIO(await report(cfg_file, "--result", "1,2", "--min-score", "80")))
    )
    expected = db(cfg, "SELECT COUNT(*) FROM verdicts WHERE result IN (1, 2) AND score >= 80")[0][0]
    assert len(flagged) == expected > 0
    assert all(int(r["score"]) >= 80 and r["result"] in ("1", "2") for r in flagged)
    porn = list(csv.DictReader(io.StringIO(await report(cfg_file, "--label", "Porn"))))
    assert porn
    assert {r["label"] for r in porn} == {"Porn"}
    skipped = list(csv.DictReader(io.StringIO(await report(cfg_file, "--state", "skipped"))))
    assert {r["state"] for r in skipped} == {"skipped"}
    assert all(r["reason"] for r in skipped)
    none = await report(cfg_file, "--since", "2999-01-01")
    assert none.strip() == ",".join((*FIELDS, "media"))


async def test_presigned_urls_live_exactly_their_lifetime(
    scanned: tuple[EmulatorState, Config, Path],
) -> None:
    state, _cfg, cfg_file = scanned
    lines = (
        await report(cfg_file, "--format", "jsonl", "--result", "1", "--presign", "600")
    ).splitlines()
    record = json.loads(lines[0])
    url = record["url"]
    assert "q-signature=" in url
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["ETag"].strip('"') == record["etag"]
        state.clock_offset = 590  # still inside the 600 s
        async with session.get(url) as resp:
            assert resp.status == 200
        state.clock_offset = 610  # past it
        async with session.get(url) as resp:
            assert resp.status == 403
            assert "Request has expired" in await resp.text()
        state.clock_offset = 0
        tampered = url.replace("q-signature=", "q-signature=0")
        async with session.get(tampered) as resp:
            assert resp.status == 403


async def test_report_to_file_and_bad_state(
    scanned: tuple[EmulatorState, Config, Path], tmp_path: Path
) -> None:
    _state, _cfg, cfg_file = scanned
    out = tmp_path / "flagged.csv"
    assert await report(cfg_file, "--result", "1", "--out", str(out)) == ""
    assert out.read_text().startswith("key,etag,size,state")
    argv = [sys.executable, "-m", "scanner", "report", "--config", str(cfg_file), "--state", "gone"]
    done = await anyio.run_process(argv, env=ENV, check=False)
    assert done.returncode == 2
    assert b"--state: unknown ['gone']" in done.stderr


async def test_damaged_stored_verdicts_export_as_null_with_a_warning(
    scanned: tuple[EmulatorState, Config, Path], tmp_path: Path
) -> None:
    _state, cfg, _cfg_file = scanned
    store = tmp_path / "copy.db"
    with sqlite3.connect(cfg.store.path) as src, sqlite3.connect(store) as dst:
        src.backup(dst)
        keys = [k for (k,) in dst.execute("SELECT key FROM verdicts ORDER BY key LIMIT 2")]
        dst.execute('UPDATE verdicts SET raw = \'{"not": "json"\' WHERE key = ?', (keys[0],))
        dst.execute("UPDATE verdicts SET raw = x'789c0000' WHERE key = ?", (keys[1],))
    argv = [sys.executable, "-m", "scanner", "report", "--store", str(store), "--format", "jsonl"]
    done = await anyio.run_process(argv, env=ENV, check=False)
    assert done.returncode == 0, done.stderr.decode()
    records = {r["key"]: r for r in map(json.loads, done.stdout.decode().splitlines())}
    assert records[keys[0]]["verdict"] is None is records[keys[1]]["verdict"]
    audited = [r for r in records.values() if r["state"] == "audited"]
    assert sum(r["verdict"] is None for r in audited) == 2  # every other verdict intact
    err = done.stderr.decode()
    assert "2 rows hold a stored verdict that is not a readable answer" in err
    assert "Traceback" not in err


async def run_report(*argv: str, stdout: int | None = None) -> tuple[int, str, str]:
    args = [sys.executable, "-m", "scanner", "report", *argv]
    kw: dict[str, Any] = {} if stdout is None else {"stdout": stdout}
    done = await anyio.run_process(args, env=ENV, check=False, **kw)
    out = done.stdout.decode() if done.stdout else ""
    return done.returncode, out, done.stderr.decode()


@pytest.fixture
async def hostile(tmp_path: Path) -> tuple[Path, list[str]]:
    """A store whose keys are formulas, and one with a bare CR in it (both allowed by COS)."""
    keys = ["=HYPERLINK(x).jpg", "+1.jpg", "-2.jpg", "@SUM(A1).jpg", "\tTAB.jpg", "a\rb.jpg"]
    state = EmulatorState(bucket=synthetic(0, 1), seed=1)
    from scanner.emulator.bucket import StoredObject, etag_of

    for k in keys:
        state.bucket.put(k, StoredObject(etag_of(k), 1000, synthetic_time()))
    state.bucket.keys()
    async with running(state) as url:
        cfg = config(url, tmp_path)
        with anyio.fail_after(30):
            await run_scan(cfg, anyio.Event(), Progress())
    return Path(cfg.store.path), keys


def synthetic_time() -> Any:
    from datetime import UTC, datetime

    return datetime(2024, 1, 1, tzinfo=UTC)


async def test_csv_neutralises_formulas_and_keeps_a_bare_cr(
    hostile: tuple[Path, list[str]],
) -> None:
    store, keys = hostile
    code, out, err = await run_report("--store", str(store))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    got = sorted(r["key"] for r in rows)
    # before: cells ran as formulas, and the \r key split into two rows
    assert got == sorted("'" + k if k[0] in "=+-@\t" else k for k in keys)
    assert len(rows) == len(keys)


async def test_report_head_full_disk_and_odd_targets(
    scanned: tuple[EmulatorState, Config, Path], tmp_path: Path
) -> None:
    _state, cfg, _ = scanned
    store = cfg.store.path
    # `report | head` ends quietly
    argv = [sys.executable, "-m", "scanner", "report", "--store", store, "--format", "jsonl"]
    shell = " ".join(f"'{a}'" for a in argv) + " | head -1"
    done = await anyio.run_process(["bash", "-o", "pipefail", "-c", shell], env=ENV, check=False)
    assert done.stderr == b"", done.stderr.decode()
    assert done.returncode == 0
    # /dev/full: one line, the I/O exit code (before: a traceback)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        code, _, err = await run_report("--store", store, stdout=full)
    finally:
        os.close(full)
    assert code == 74
    assert err.strip().splitlines()[-1].startswith("cos-scanner: cannot write the report")
    assert "Traceback" not in err
    # --out replaces only a regular file (before: renamed over a symlink or a FIFO)
    target = tmp_path / "keep.txt"
    target.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    for odd in (link, fifo, Path("/dev/null")):
        code, _, err = await run_report("--store", store, "--out", str(odd))
        assert code == 2, err
        assert "is not a regular file" in err
    assert link.is_symlink()
    assert target.read_text() == "keep"
    # an absurd scan id is a usage error (before: OverflowError in SQLite)
    code, _, err = await run_report("--store", store, "--scan", "99999999999999999999999")
    assert code == 2
    assert "no scan has id" in err


async def test_a_copied_store_reports_without_a_config(
    scanned: tuple[EmulatorState, Config, Path], tmp_path: Path
) -> None:
    """Issue 25, item 2: `report` and `status --store FILE` on a copy of the store, with no
    config at all; with two targets in it, `--target` picks one (an unknown one is exit 2)."""
    import shutil
    from dataclasses import replace

    state, cfg, _ = scanned
    async with running(state) as url:  # a second target in the same store: a prefix scan
        cos = replace(cfg.cos, endpoint=url, prefix="albums/")
        await run_scan(replace(cfg, cos=cos), anyio.Event(), Progress())
    whole = f"cos://{cfg.cos.bucket}.{cfg.cos.region}/"
    copy = tmp_path / "elsewhere" / "copy.db"
    copy.parent.mkdir()
    shutil.copy(cfg.store.path, copy)
    env = {k: v for k, v in ENV.items() if not k.startswith(("TENCENTCLOUD_", "COS_SCANNER_"))}

    async def cli(*argv: str) -> tuple[int, str, str]:
        done = await anyio.run_process(
            [sys.executable, "-m", "scanner", *argv], env=env, check=False, cwd=copy.parent
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    code, _, err = await cli("report", "--store", str(copy))
    assert code == 2, err
    assert "holds 2 targets" in err
    assert "--target" in err
    code, out, err = await cli(
        "report", "--store", str(copy), "--target", whole, "--format", "json"
    )
    assert code == 0, err
    totals = json.loads(out)["by_state"]
    assert totals["audited"] == db(cfg, "SELECT COUNT(*) FROM verdicts")[0][0]
    code, out, err = await cli("report", "--store", str(copy), "--target", whole + "albums/")
    assert code == 0, err
    keys = [r["key"] for r in csv.DictReader(io.StringIO(out))]
    assert keys
    assert all(k.startswith("albums/") for k in keys)
    code, _, err = await cli("report", "--store", str(copy), "--target", "cos://nope.ap-x/")
    assert code == 2, err
    assert "not in" in err
    code, out, err = await cli("status", "--store", str(copy), "--json")
    assert code == 0, err
    assert {s["target"] for s in json.loads(out)} == {whole, whole + "albums/"}
    code, out, err = await cli("status", "--store", str(copy), "--target", whole, "--json")
    assert code == 0, err
    assert {s["target"] for s in json.loads(out)} == {whole}


async def test_excel_csv_keeps_chinese_keys(
    scanned: tuple[EmulatorState, Config, Path], tmp_path: Path
) -> None:
    """What moderators open: a UTF-8 byte order mark first (Excel reads the rest as UTF-8,
    not the locale's code page), CRLF lines, every key as it is."""
    state, _cfg, cfg_file = scanned
    out = tmp_path / "report.csv"
    await report(cfg_file, "--format", "csv", "--excel", "--out", str(out))
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") >= data.count(b"\n") - data.count(b"\n\r")  # CRLF line ends
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == (*FIELDS, "media")
    chinese = {k for k in state.bucket.objects if "相册" in k or "照片" in k}
    assert chinese
    assert chinese <= {r["key"] for r in rows}
    plain = await report(cfg_file, "--format", "csv")
    assert not plain.startswith("\ufeff")  # only when asked
    failed = await anyio.run_process(
        [sys.executable, "-m", "scanner", "report", "--config", str(cfg_file), "--format",
         "jsonl", "--excel"], env=ENV, check=False,
    )  # fmt: skip
    assert failed.returncode == 2
    assert b"--excel goes with --format csv" in failed.stderr


async def test_one_line_answers_an_appeal(scanned: tuple[EmulatorState, Config, Path]) -> None:
    """What the service said, what a person decided (who, when, why) and what `act` did
    (which run, when): one report row."""
    from scanner.models import Target
    from scanner.store import Store

    _state, cfg, cfg_file = scanned
    target = Target.of(cfg.cos).id
    flagged = db(cfg, "SELECT key, etag FROM verdicts WHERE result = 1 ORDER BY key LIMIT 2")
    (blocked, approved) = flagged
    async with await Store.open(cfg.store.path) as store:
        await store.decide(target, [blocked], "block", "alice", note="nudity, appeal denied")
        await store.decide(target, [approved], "approve", "bob")
    argv = [sys.executable, "-m", "scanner", "act", "private", "--config", str(cfg_file),
            "--decision", "block", "--apply"]  # fmt: skip
    done = await anyio.run_process(argv, env=ENV, check=False)
    assert done.returncode == 0, done.stderr.decode()
    rows = {
        r["key"]: r
        for r in map(json.loads, (await report(cfg_file, "--format", "jsonl")).splitlines())
    }
    line = rows[blocked[0]]
    assert (line["decision"], line["reviewer"], line["note"]) == (
        "block",
        "alice",
        "nudity, appeal denied",
    )
    assert line["decided_at"]
    assert line["action"] == "private"
    assert line["acted_at"] >= line["decided_at"]
    assert line["act_run"] == db(cfg, "SELECT MAX(id) FROM act_runs")[0][0]
    other = rows[approved[0]]
    assert (other["decision"], other["reviewer"], other["action"]) == ("approve", "bob", None)
    csv_rows = {r["key"]: r for r in csv.DictReader(io.StringIO(await report(cfg_file)))}
    assert csv_rows[blocked[0]]["action"] == "private"
    assert csv_rows[approved[0]]["action"] == ""


async def test_repeat_offenders(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(600, 41), seed=41)
    async with running(state) as url:
        cfg_file = tmp_path / "c.toml"
        cfg_file.write_text(
            f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n'
            f'[store]\npath = "{tmp_path / "s.db"}"\n'
            '[scan]\nuser_from_key = "^(?P<user>[^/]+)/"\n'
        )
        done = await anyio.run_process(
            [sys.executable, "-m", "scanner", "scan", "--config", str(cfg_file)], env=ENV,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        users = json.loads(await report(cfg_file, "--by-user", "--format", "json"))
        assert any(u["flagged"] >= 2 for u in users)
        repeat = json.loads(
            await report(cfg_file, "--by-user", "--min-flagged", "2", "--format", "json")
        )
        assert repeat == [u for u in users if u["flagged"] >= 2]
        assert len(repeat) < len(users)
