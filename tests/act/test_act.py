"""`cos-scanner act` against the emulator over real HTTP, a real SQLite journal, real signals.

Each test scans a synthetic album first, then acts on the stored verdicts. The emulator
counts writes (ACL puts, copies, deletes) per bucket/key: acting exactly once means one write
per selected key (two for a quarantined one: the copy's key and the source's delete).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from scanner.cli import main
from tests.helpers import ENV, emulator_process, stats

BUCKET = "album-1250000000"
QUARANTINE = "quarantine-1250000000"


@pytest.fixture
def emulator() -> Iterator[str]:
    with emulator_process("--objects", "1500", "--seed", "8", "--extra-bucket", QUARANTINE) as url:
        yield url


def config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[cos]\nbucket = "{BUCKET}"\nendpoint = "{url}"\n[audit]\nqps = 300.0\n{extra}\n'
        f"[retry]\nwait_initial = 0.01\nwait_max = 0.05\n[act]\nqps = 300.0\nconcurrency = 8\n"
        f'[store]\npath = "{tmp_path / "s.db"}"\n'
    )
    return path


def post(url: str, path: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url + path, json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).close()


def anonymous(url: str, key: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/{quote(key)}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def rows(db: Path, sql: str, *args: Any) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def flagged(db: Path, result: int = 1) -> set[str]:
    return {k for (k,) in rows(db, "SELECT key FROM verdicts WHERE result = ?", result)}


def writes(url: str) -> dict[str, int]:
    return dict(stats(url, detail=True)["writes"])


def snapshot(url: str, keys: list[str]) -> dict[str, Any]:
    """Every key's HEAD (ETag, size) and anonymous readability: the bucket as a reader sees it."""
    out = {}
    for key in keys:
        req = urllib.request.Request(f"{url}/{quote(key)}", method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                out[key] = (resp.headers["ETag"], resp.headers["Content-Length"], resp.status)
        except urllib.error.HTTPError as exc:
            out[key] = (None, None, exc.code)
    return out


def test_private_makes_flagged_private_and_a_second_run_sends_nothing(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path, emulator))
    assert main(["scan", "--config", cfg]) in (0, 3)
    db = tmp_path / "s.db"
    porn = flagged(db)
    assert len(porn) > 20
    normal = sorted(k for (k,) in rows(db, "SELECT key FROM verdicts WHERE result = 0 LIMIT 5"))
    assert all(anonymous(emulator, k) == 200 for k in [*sorted(porn)[:5], *normal])
    capsys.readouterr()
    assert main(["act", "private", "--result", "1", "--config", cfg]) == 0  # the plan
    assert f"objects   {len(porn):>12,}" in capsys.readouterr().out
    assert main(["act", "private", "--result", "1", "--config", cfg, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["objects"], len(plan["samples"])) == (len(porn), 10)
    assert writes(emulator) == {}  # a plan sends nothing
    assert main(["act", "private", "--result", "1", "--config", cfg, "--apply"]) == 0
    w = writes(emulator)
    assert set(w) == {f"{BUCKET}/{k}" for k in porn}  # touches nothing else
    assert set(w.values()) == {1}
    assert all(anonymous(emulator, k) == 403 for k in porn)
    assert all(anonymous(emulator, k) == 200 for k in normal)
    before = stats(emulator)["requests"].get("object", 0)
    assert main(["act", "private", "--result", "1", "--config", cfg, "--apply"]) == 0
    assert stats(emulator)["requests"].get("object", 0) == before  # not one request


def test_quarantine_then_restore_leaves_the_bucket_as_it_was(
    emulator: str, tmp_path: Path, creds: None
) -> None:
    cfg = str(config(tmp_path, emulator))
    main(["scan", "--config", cfg])
    db = tmp_path / "s.db"
    everything = sorted(k for (k,) in rows(db, "SELECT key FROM verdicts"))
    suspicious = flagged(db, 2)
    some = sorted(suspicious)[:3]
    post(emulator, "/_emulator/faults", {})
    client_private = ["act", "private", "--config", cfg, "--apply", "--prefix", some[0]]
    assert main(client_private) == 0  # one of them private before: restored private, too
    before = snapshot(emulator, everything)
    to = f"cos://{QUARANTINE}/q/"
    assert main(["act", "quarantine", "--result", "2", "--to", to, "--config", cfg]) == 0
    assert main(["act", "quarantine", "--result", "2", "--to", to, "--config", cfg,
                 "--apply"]) == 0  # fmt: skip
    gone = snapshot(emulator, sorted(suspicious))
    assert {v[2] for v in gone.values()} == {404}
    (run,) = rows(db, "SELECT id FROM act_runs WHERE action = 'quarantine'")
    assert main(["act", "restore", "--run", str(run[0]), "--config", cfg, "--apply"]) == 0
    assert snapshot(emulator, everything) == before  # byte for byte (ETag, size), ACL for ACL
    assert anonymous(emulator, some[0]) == 403  # private again


def test_inside_target_refused_and_delete_needs_confirmation(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path, emulator))
    main(["scan", "--config", cfg])
    capsys.readouterr()
    assert main(["act", "quarantine", "--to", f"cos://{BUCKET}/q/", "--config", cfg]) == 2
    assert "inside the scanned target" in capsys.readouterr().err
    assert main(["act", "delete", "--result", "1", "--config", cfg, "--apply"]) == 2
    assert "--confirm-delete" in capsys.readouterr().err
    assert writes(emulator) == {}


def test_changed_since_audit_and_denied_keys(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path, emulator))
    main(["scan", "--config", cfg])
    db = tmp_path / "s.db"
    porn = sorted(flagged(db))
    changed, denied = porn[:3], porn[3:5]
    post(emulator, "/_emulator/objects", {"touch": changed})  # a new ETag after the audit
    faults = {"deny_keys": denied, "targets": ["object"], "error_rate": 0.1, "reset_rate": 0.03,
              "object_qps_cap": 60, "fail_next": [503, 503]}  # fmt: skip
    post(emulator, "/_emulator/faults", faults)
    code = main(["act", "private", "--result", "1", "--config", cfg, "--apply"])
    assert code == 3  # done, some objects failed
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    journal = dict(rows(db, "SELECT key, COALESCE(reason, state) FROM journal"))
    assert {journal[k] for k in changed} == {"changed-since-audit"}
    assert {journal[k] for k in denied} == {"AccessDenied"}
    w = writes(emulator)
    assert not any(f"{BUCKET}/{k}" in w for k in changed + denied)  # never acted on
    assert all(w.get(f"{BUCKET}/{k}") == 1 for k in porn[5:])
    injected = stats(emulator)["faults"]
    assert injected.get("error", 0) > 0
    assert injected.get("throttled", 0) > 0  # the act budget learned the cap


def act_process(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        argv = [sys.executable, "-m", "scanner", "act", "quarantine", "--result", "1,2",
                "--to", f"cos://{QUARANTINE}/q/", "--config", str(cfg), "--apply"]  # fmt: skip
        return subprocess.Popen(argv, stdout=out, stderr=out, env=ENV)


@pytest.mark.slow
def test_sigkill_at_five_points_then_resume_acts_exactly_once(
    emulator: str, tmp_path: Path, creds: None
) -> None:
    cfg = config(tmp_path, emulator)
    main(["scan", "--config", str(cfg)])
    db = tmp_path / "s.db"
    selected = flagged(db, 1) | flagged(db, 2)
    cfg.write_text(cfg.read_text().replace("[act]\nqps = 300.0", "[act]\nqps = 25.0"))
    log = tmp_path / "act.log"
    done_at = []
    total = 2 * len(selected)  # a copy and a delete each
    for share in (0.05, 0.2, 0.4, 0.6, 0.8):  # of the writes, seen when the act is killed
        threshold = int(total * share)
        proc = act_process(cfg, log)
        while sum(writes(emulator).values()) < threshold and proc.poll() is None:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        done_at.append(sum(writes(emulator).values()))
    assert act_process(cfg, log).wait(timeout=120) == 0, log.read_text()[-2000:]
    w = writes(emulator)
    assert len(done_at) == 5
    assert set(w) == {f"{BUCKET}/{k}" for k in selected} | {
        f"{QUARANTINE}/q/{k}" for k in selected
    }  # none outside the selection
    assert set(w.values()) == {1}  # every write exactly once: a copy, a delete
    states = dict(rows(db, "SELECT state, COUNT(*) FROM journal GROUP BY state"))
    assert states == {"done": len(selected)}
    runs = rows(db, "SELECT id, state, selected FROM act_runs")
    assert len(runs) == 1, (runs, done_at)  # resumed, not started again


def test_nightly_on_flagged_and_auto_freeze(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = "[audit.freeze]\nporn_score = 90\n"
    cfg = config(tmp_path, emulator, extra)
    text = cfg.read_text().replace("[act]\n", '[act]\non_flagged = "private"\nmin_score = 91\n')
    cfg.write_text(text)
    main(["scan", "--config", str(cfg)])
    db = tmp_path / "s.db"
    porn = flagged(db)
    frozen = {k for (k,) in rows(db, "SELECT key FROM verdicts WHERE forbid_state = 1")}
    assert frozen == {k for (k,) in rows(db, "SELECT key FROM verdicts WHERE label = 'Porn'")}
    assert all(anonymous(emulator, k) == 403 for k in sorted(frozen)[:10])
    (scan,) = rows(db, "SELECT frozen FROM scans")
    assert scan[0] == len(frozen)
    # on_flagged made every Result 1 scoring >= 91 private at the end of the scan
    high = {k for (k,) in rows(db, "SELECT key FROM verdicts WHERE result = 1 AND score >= 91")}
    journal = {k for (k,) in rows(db, "SELECT key FROM journal WHERE state = 'done'")}
    assert journal == high
    assert high <= porn
    summary = json.loads((tmp_path / "s.db.summary.json").read_text())
    assert summary["act"]["states"] == {"done": len(high)}
    capsys.readouterr()
    assert main(["report", "--frozen", "--format", "jsonl", "--config", str(cfg)]) == 0
    reported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["key"] for r in reported} == frozen
    assert {r["forbid_state"] for r in reported} == {1}


def test_restore_by_filter_undoes_only_the_selection(
    emulator: str, tmp_path: Path, creds: None
) -> None:
    cfg = str(config(tmp_path, emulator))
    main(["scan", "--config", cfg])
    db = tmp_path / "s.db"
    porn = sorted(flagged(db))
    assert main(["act", "private", "--result", "1", "--config", cfg, "--apply"]) == 0
    one = porn[0]
    assert main(["act", "restore", "--prefix", one, "--config", cfg, "--apply"]) == 0
    assert anonymous(emulator, one) == 200  # its ACL put back (default: the bucket's)
    assert all(anonymous(emulator, k) == 403 for k in porn[1:])
    # and it can be made private again: the action is no longer in effect on it
    assert main(["act", "private", "--result", "1", "--config", cfg, "--apply"]) == 0
    assert anonymous(emulator, one) == 403
    assert writes(emulator)[f"{BUCKET}/{one}"] == 3  # private, restored, private again


def test_deletion_is_journaled_and_cannot_be_restored(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path, emulator))
    main(["scan", "--config", cfg])
    db = tmp_path / "s.db"
    porn = sorted(flagged(db))[:4]
    delete = ["act", "delete", "--prefix", porn[0], "--config", cfg, "--apply", "--confirm-delete"]
    assert main(delete) == 0
    assert anonymous(emulator, porn[0]) == 404
    (run,) = rows(db, "SELECT id FROM act_runs WHERE action = 'delete'")
    capsys.readouterr()
    assert main(["act", "restore", "--run", str(run[0]), "--config", cfg, "--apply",
                 "--json"]) == 0  # fmt: skip
    tally = json.loads(capsys.readouterr().out)
    assert tally["reasons"] == {"skipped: deleted-objects-cannot-be-restored": 1}
    assert anonymous(emulator, porn[0]) == 404


def test_copies_of_frozen_content_are_made_private_by_on_flagged(
    tmp_path: Path, creds: None
) -> None:
    """The service freezes only the object it audited; the copies that share its verdict are
    made private by `[act] on_flagged` at the end of the scan, each with its own journal row."""
    with emulator_process("--objects", "1500", "--seed", "8", "--copies", "0.3") as url:
        cfg = config(tmp_path, url, "[audit.freeze]\nporn_score = 90\n")
        cfg.write_text(cfg.read_text().replace("[act]\n", '[act]\non_flagged = "private"\n'))
        assert main(["scan", "--config", str(cfg)]) == 0
        db = tmp_path / "s.db"
        porn = dict(rows(db, "SELECT key, verdict_from FROM verdicts WHERE label = 'Porn'"))
        copies = {k for k, src in porn.items() if src is not None}
        assert len(copies) >= 5
        frozen = {k for (k,) in rows(db, "SELECT key FROM verdicts WHERE forbid_state = 1")}
        assert frozen == set(porn) - copies  # the service froze what it audited, only that
        journal = dict(rows(db, "SELECT key, state FROM journal"))
        assert copies <= set(journal)
        assert {journal[k] for k in copies} == {"done"}
        assert all(anonymous(url, k) == 403 for k in sorted(porn))  # every copy private too
