"""Acting never loses a byte and never leaves a violator exposed: each action killed with
kill -9 at each journal state, the key then left alone, re-uploaded or deleted, on a bucket
with and without versioning, then the same command again.

The emulator holds the first write of a kind (fault `hold`): the act process has journaled
`intent` (or `copied`) and waits for an answer that never comes; the test kills it -9, changes
the key the held write was for, releases the hold (the write is never performed) and resumes.
Afterwards every version that existed before is at its key or in quarantine (by ETag), no
object is publicly readable at its key while its flagged verdict says private, and every
journal row is final with what happened to it.
"""

from __future__ import annotations

import csv
import hashlib
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_SECRET_ID,
    EmulatorState,
    running,
    synthetic,
)
from scanner.emulator.bucket import Bucket
from scanner.emulator.objects import effective_acl
from scanner.emulator.state import KeyPair
from tests.helpers import ENV, sdk_client

QUARANTINE = "quarantine-1250000000"
NEW_BYTES = b"a new upload at the key, after the audit"
NEW_ETAG = hashlib.md5(NEW_BYTES).hexdigest()

#: (action, the write held, the journal state of its object at the kill)
POINTS = [
    ("private", "PUT acl", "intent"),
    ("quarantine", "PUT copy", "intent"),
    ("quarantine", "DELETE", "copied"),
    ("delete", "DELETE", "intent"),
    ("restore", "PUT copy", "intent"),
    ("restore", "DELETE", "copied"),
]
CHANGES = ["nothing", "upload", "delete"]


def _config(tmp: Path, url: str) -> Path:
    path = tmp / "c.toml"
    path.write_text(
        f'[cos]\nbucket = "{DEFAULT_BUCKET}"\nendpoint = "{url}"\n[audit]\nqps = 300.0\n'
        "[retry]\nwait_initial = 0.01\nwait_max = 0.05\n[act]\nqps = 300.0\nconcurrency = 4\n"
        f'[store]\npath = "{tmp / "s.db"}"\n'
    )
    return path


def _rows(db: Path, sql: str, *args: Any) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def _argv(cfg: Path, action: str) -> list[str]:
    argv = [sys.executable, "-m", "scanner", "act", action, "--config", str(cfg), "--apply"]
    if action == "restore":
        return [*argv, "--run", "1"]
    argv += ["--result", "1,2"]
    if action == "quarantine":
        argv += ["--to", f"cos://{QUARANTINE}/q/"]
    if action == "delete":
        argv += ["--confirm-delete"]
    return argv


async def _cli(argv: list[str]) -> int:
    done = await anyio.run_process(argv, env=ENV, check=False)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done.returncode


async def _change(url: str, key: str, change: str) -> None:
    """What a user does at the key while the act process is dead, through the official SDK."""
    client = sdk_client(url)
    if change == "upload":
        await anyio.to_thread.run_sync(
            lambda: client.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=NEW_BYTES)
        )
    elif change == "delete":
        await anyio.to_thread.run_sync(lambda: client.delete_object(Bucket=DEFAULT_BUCKET, Key=key))


def _versions_of(state: EmulatorState, key: str) -> set[str]:
    """Every ETag the bucket holds for `key`: the object at the key and its versions."""
    at_key = state.bucket.objects.get(key)
    found = {at_key.etag} if at_key is not None else set()
    for version in state.versioning.history.get(f"{DEFAULT_BUCKET}/{key}", []):
        if version.obj is not None:
            found.add(version.obj.etag)
    return found


def _expected(action: str, journaled: str, change: str, versioned: bool) -> tuple[str, str]:
    """The held object's final journal row: (state, reason)."""
    if change == "nothing":
        return "done", ""
    if action == "private":  # a new object at the key, or none: not the version flagged
        return ("skipped", "changed-since-audit" if change == "upload" else "gone")
    if action == "restore":
        return ("conflict", "newer object at the key") if change == "upload" else ("done", "")
    if versioned or (change == "delete" and (action, journaled) != ("quarantine", "intent")):
        return "done", ""  # exactly the audited version is copied and removed, by its id
    if (action, journaled) == ("quarantine", "intent"):  # the user destroyed it before the copy
        return "skipped", "changed-since-audit" if change == "upload" else "gone"
    return "conflict", "re-uploaded"  # removed only while it is the audited version


def _check(
    state: EmulatorState, db: Path, action: str, audited: dict[str, str], held: str, lost: bool
) -> None:
    """Every version that existed before is at its key or in quarantine, by ETag (but `lost`:
    the held key's, which the user's change destroyed); none flagged is public at its key."""
    quarantine = state.extra_buckets[QUARANTINE].objects
    for key, etag in audited.items():
        here = state.bucket.objects.get(key)
        copy = quarantine.get(f"q/{key}")
        versions = _versions_of(state, key)
        if key == held and lost:
            assert etag not in versions | ({copy.etag} if copy else set())
            continue
        if action == "private":
            assert etag in versions, key
            if here is not None and here.etag == etag:
                assert effective_acl(state, DEFAULT_BUCKET, key) == "private", key
        elif action == "quarantine":
            assert copy is not None, key
            assert copy.etag == etag, key
            assert etag not in versions, key
        elif action == "delete":
            assert etag not in versions, key
        elif here is not None and here.etag == etag:  # restore: back at its key
            assert copy is None, key
        else:  # or kept in quarantine, where a newer object is at the key
            assert key == held, key
            assert copy is not None, key
            assert copy.etag == etag, key


@pytest.mark.slow
@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize(
    ("action", "kind", "journaled"), POINTS, ids=[f"{a}-{s}" for a, _, s in POINTS]
)
async def test_kill_at_each_journal_state(
    tmp_path: Path, action: str, kind: str, journaled: str, change: str, versioned: bool
) -> None:
    state = EmulatorState(bucket=synthetic(400, 31), seed=31)
    state.extra_buckets[QUARANTINE] = Bucket()
    if versioned:
        state.versioning.configure(DEFAULT_BUCKET, "Enabled")
    async with running(state) as url:
        cfg = _config(tmp_path, url)
        db = tmp_path / "s.db"
        assert await _cli([sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]) == 0
        audited = dict(_rows(db, "SELECT key, etag FROM verdicts WHERE result > 0"))
        assert len(audited) >= 5
        if action == "restore":  # what is undone: a finished quarantine (run 1)
            assert await _cli(_argv(cfg, "quarantine")) == 0
        state.faults.hold = [kind]
        with anyio.fail_after(60):
            proc = await anyio.open_process(_argv(cfg, action), env=ENV)
            await state.stats.changes.until(lambda: bool(state.stats.held))
            held = state.stats.held[0][len(kind) + 1 :].partition("/")[2]  # "KIND bucket/key"
            held = held.removeprefix("q/")  # a restore's DELETE is of the quarantine copy
            run = max(r for (r,) in _rows(db, "SELECT id FROM act_runs"))
            got = _rows(db, "SELECT state FROM journal WHERE run_id = ? AND key = ?", run, held)
            assert got == [(journaled,)]
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            await proc.aclose()
        state.fault_updates += 1  # release the held write: it is never performed
        state.fault_changes.changed()
        await _change(url, held, change)
        code = await _cli(_argv(cfg, action))
        assert code == 0, code
        journal = _rows(
            db, "SELECT key, state, COALESCE(reason, '') FROM journal WHERE run_id = ?", run
        )
        assert not [k for k, s, _ in journal if s in ("pending", "intent", "copied", "failed")]
        assert {k: (s, r) for k, s, r in journal}[held] == _expected(
            action, journaled, change, versioned
        )
        lost = (
            change != "nothing"
            and not versioned
            and (  # the user's change destroyed it
                action == "private" or (action, journaled) == ("quarantine", "intent")
            )
        )
        _check(state, db, action, audited, held, lost)
        if change == "upload":  # the new upload is never touched, whatever the action
            assert state.bucket.objects[held].etag == NEW_ETAG
            assert effective_acl(state, DEFAULT_BUCKET, held) != "private"  # not ours to hide


async def _scanned(tmp_path: Path, url: str) -> tuple[Path, Path]:
    cfg = _config(tmp_path, url)
    assert await _cli([sys.executable, "-m", "scanner", "scan", "--config", str(cfg)]) == 0
    return cfg, tmp_path / "s.db"


async def _cli_out(argv: list[str]) -> tuple[int, str, str]:
    done = await anyio.run_process(argv, env=ENV, check=False)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert "Traceback" not in err, err
    return done.returncode, out, err


async def test_two_act_runs_at_once_one_is_busy_and_each_object_is_written_once(
    tmp_path: Path,
) -> None:
    state = EmulatorState(bucket=synthetic(600, 32), seed=32)
    state.extra_buckets[QUARANTINE] = Bucket()
    state.faults.latency = 0.02  # the first run is still working when the second starts
    async with running(state) as url:
        cfg, db = await _scanned(tmp_path, url)
        flagged = dict(_rows(db, "SELECT key, etag FROM verdicts WHERE result > 0"))
        argv = _argv(cfg, "quarantine")
        async with anyio.create_task_group() as tg:
            codes: list[int] = []
            errs: list[str] = []

            async def one() -> None:
                code, _, err = await _cli_out(argv)
                codes.append(code)
                errs.append(err)

            tg.start_soon(one)
            tg.start_soon(one)
    assert sorted(codes) == [0, 75], errs
    busy = next(e for c, e in zip(codes, errs, strict=True) if c == 75)
    assert "is being acted on by pid" in busy.strip().splitlines()[-1]
    writes = state.stats.writes
    for key in flagged:  # one copy into quarantine, one delete of the source: exactly once
        assert writes[f"{QUARANTINE}/q/{key}"] == 1, key
        assert writes[f"{DEFAULT_BUCKET}/{key}"] == 1, key
    assert _rows(db, "SELECT COUNT(*) FROM act_runs") == [(1,)]  # the busy one wrote nothing


async def test_a_reupload_of_a_privated_key_is_private_after_the_nightly(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(400, 33), seed=33)
    async with running(state) as url:
        cfg, db = await _scanned(tmp_path, url)
        with cfg.open("a") as f:
            f.write("[scan]\nincremental = true\n")
        cfg.write_text(cfg.read_text().replace("[act]\n", '[act]\non_flagged = "private"\n'))
        assert await _cli(_argv(cfg, "private")) == 0
        key = _rows(db, "SELECT key FROM verdicts WHERE result = 1 ORDER BY key")[0][0]
        assert effective_acl(state, DEFAULT_BUCKET, key) == "private"
        client = sdk_client(url)
        await anyio.to_thread.run_sync(  # the user uploads the picture again: public again
            lambda: client.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=NEW_BYTES)
        )
        assert effective_acl(state, DEFAULT_BUCKET, key) == "public-read"
        plan = await _cli_out(
            [sys.executable, "-m", "scanner", "act", "private", "--result", "1", "--config",
             str(cfg), "--json"]
        )  # fmt: skip
        assert '"reuploaded_since_run": {}' in plan[1]  # not audited yet: the nightly comes first
        nightly = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg), "--incremental"]
        assert await _cli(nightly) == 0
        assert effective_acl(state, DEFAULT_BUCKET, key) == "private"  # taken down again
        acted = _rows(
            db, "SELECT j.etag, j.state FROM journal j JOIN acted a ON a.run_id = j.run_id "
            "AND a.key = j.key WHERE j.key = ?", key,
        )  # fmt: skip
        assert acted == [(NEW_ETAG, "done")]


async def test_errors_that_stop_a_run(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(400, 34), seed=34)
    async with running(state) as url:
        cfg, db = await _scanned(tmp_path, url)
        code, _, err = await _cli_out(_argv(cfg, "quarantine"))  # no such quarantine bucket
        assert code == 2
        assert err.strip().splitlines()[-1].startswith("cos-scanner: ")
        assert f"bucket {QUARANTINE} does not exist" in err
        assert _rows(db, "SELECT COUNT(*) FROM act_runs") == [(0,)]
        code, _, err = await _cli_out(
            [sys.executable, "-m", "scanner", "act", "restore", "--config", str(cfg), "--apply"]
        )
        assert code == 2
        assert "restore needs a scope" in err
        state.extra_buckets[QUARANTINE] = Bucket()
        state.faults.deny_buckets = [QUARANTINE]  # it exists; these credentials may not use it
        code, _, err = await _cli_out(_argv(cfg, "quarantine"))
        assert code == 77
        assert f"no permission on bucket {QUARANTINE} (AccessDenied)" in err
        assert _rows(db, "SELECT COUNT(*) FROM act_runs") == [(0,)]
        state.faults.deny_buckets = []
        bad = dict(ENV, TENCENTCLOUD_SECRET_KEY="wrong" * 8)
        done = await anyio.run_process(_argv(cfg, "private"), env=bad, check=False)
        assert done.returncode == 77, done.stderr.decode()
        assert _rows(db, "SELECT COUNT(*) FROM journal WHERE state = 'failed'") == [(0,)]
        assert not state.stats.writes


async def test_what_sits_in_quarantine_is_restorable_whatever_happened(tmp_path: Path) -> None:
    """A journal left by a run that raced another (before act took a lease): rows that failed
    NoSuchKey although their copy sits in quarantine. The next act run reconciles them, so a
    restore of that run brings every object back; a second restore says already restored."""
    state = EmulatorState(bucket=synthetic(400, 35), seed=35)
    state.extra_buckets[QUARANTINE] = Bucket()
    async with running(state) as url:
        cfg, db = await _scanned(tmp_path, url)
        assert await _cli(_argv(cfg, "quarantine")) == 0
        keys = [k for (k,) in _rows(db, "SELECT key FROM journal WHERE run_id = 1")]
        with sqlite3.connect(db) as conn:  # what the race left: failed, not in effect
            conn.execute(
                "UPDATE journal SET state = 'failed', reason = 'NoSuchKey' WHERE run_id = 1 "
                "AND key IN (SELECT key FROM journal WHERE run_id = 1 ORDER BY key LIMIT 3)"
            )
            conn.execute("DELETE FROM acted WHERE run_id = 1 AND key IN (SELECT key FROM "
                         "journal WHERE run_id = 1 AND state = 'failed')")  # fmt: skip
        assert await _cli(_argv(cfg, "restore")) == 0
        assert all(k in state.bucket.objects for k in keys)  # every one back at its key
        assert not state.extra_buckets[QUARANTINE].objects
        code, out, _ = await _cli_out(
            [sys.executable, "-m", "scanner", "act", "restore", "--run", "1", "--config",
             str(cfg)]
        )  # fmt: skip
        assert code == 0
        assert f"already restored {len(keys)}" in out


async def test_act_on_a_list_of_keys(tmp_path: Path) -> None:
    """`--keys FILE` (a report's csv export, or one key a line on standard input) combines with
    the filters: exactly the listed keys the filters select are acted on."""
    state = EmulatorState(bucket=synthetic(400, 36), seed=36)
    async with running(state) as url:
        cfg, db = await _scanned(tmp_path, url)
        flagged = sorted(k for (k,) in _rows(db, "SELECT key FROM verdicts WHERE result > 0"))
        normal = sorted(k for (k,) in _rows(db, "SELECT key FROM verdicts WHERE result = 0"))
        export = tmp_path / "flagged.csv"
        code, _, _ = await _cli_out(
            [sys.executable, "-m", "scanner", "report", "--config", str(cfg), "--format", "csv",
             "--result", "1,2", "--out", str(export)]
        )  # fmt: skip
        assert code == 0
        listed = tmp_path / "keys.csv"  # a csv with a key column: two flagged keys, one normal
        lines = export.read_text(encoding="utf-8-sig").splitlines()
        listed.write_text("\n".join([lines[0], lines[1], lines[2]]) + "\n", encoding="utf-8")
        chosen = [row[0] for row in csv.reader(lines[1:3])]
        base = [sys.executable, "-m", "scanner", "act", "private", "--config", str(cfg)]
        code, out, _ = await _cli_out([*base, "--result", "1,2", "--keys", str(listed), "--json"])
        assert code == 0
        assert '"objects": 2' in out
        assert await _cli([*base, "--result", "1,2", "--keys", str(listed), "--apply"]) == 0
        private = {
            k for k in flagged + normal if effective_acl(state, DEFAULT_BUCKET, k) == "private"
        }
        assert private == set(chosen)
        stdin = "\n".join([normal[0], flagged[-1], ""]).encode()
        done = await anyio.run_process(
            [*base, "--result", "1,2", "--keys", "-", "--apply"], input=stdin, env=ENV, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        assert effective_acl(state, DEFAULT_BUCKET, flagged[-1]) == "private"
        assert effective_acl(state, DEFAULT_BUCKET, normal[0]) != "private"  # not selected


async def test_credentials_refused_mid_run_stop_it_with_nothing_failed(tmp_path: Path) -> None:
    """The key is rotated while `act` runs: its HEADs now get a bodiless 403, the GET ?acl
    that asks again says SignatureDoesNotMatch, and the run stops at once (exit 77), the rest
    untouched and none of it journaled failed (before: every object failed, exit 3)."""
    state = EmulatorState(bucket=synthetic(1500, 37), seed=37)
    state.faults.latency = 0.01
    async with running(state) as url:
        cfg, db = await _scanned(tmp_path, url)
        with anyio.fail_after(60):
            proc = await anyio.open_process(_argv(cfg, "private"), env=ENV)
            await state.stats.changes.until(lambda: state.stats.requests["object"] >= 30)
            state.keys[DEFAULT_SECRET_ID] = KeyPair("rotated-" + "k" * 24)
            assert await proc.wait() == 77
            await proc.aclose()
        states = dict(_rows(db, "SELECT state, COUNT(*) FROM journal GROUP BY state"))
        assert "failed" not in states, states
        assert states.get("pending", 0) > 0  # the rest untouched, for the next run
        assert _rows(db, "SELECT state FROM act_runs") == [("failed",)]
