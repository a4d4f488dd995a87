"""A scan of an album with videos, voice notes and documents as a real subprocess against an
emulator subprocess, killed with kill -9 three times while jobs are in flight, then resumed:
no job is submitted again once its JobId was stored, none is lost, and what was billed twice
is at most what was in flight."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner.emulator import synthetic
from scanner.emulator.media import kind_of, media_verdict
from scanner.emulator.rules import DEFAULT_SCENES
from tests.helpers import (
    IN_FLIGHT,
    assert_done_whole,
    db_rows,
    emulator_process,
    stats,
    wait_until,
    write_config,
)
from tests.helpers import scan_process as scan

pytestmark = pytest.mark.slow  # real subprocesses killed with real signals

OBJECTS, SEED, CONCURRENCY = 1200, 12, 10


def media_config(path: Path, url: str, store: Path) -> Path:
    write_config(path, url, store)
    text = path.read_text().replace(
        "[scan]\n", '[scan]\nmedia = ["image", "video", "audio", "document"]\n'
    )
    jobs = f"[jobs]\nconcurrency = {CONCURRENCY}\nqps = 200.0\npoll_interval = 0.2\n"
    path.write_text(text + jobs)
    return path


def test_kill_9_three_times_while_jobs_are_in_flight_then_resume(tmp_path: Path) -> None:
    album = synthetic(OBJECTS, SEED, media=0.08)
    args = ("--objects", str(OBJECTS), "--seed", str(SEED), "--media", "0.08",
            "--job-seconds", "1.5", "--latency", "0.02")  # fmt: skip
    with emulator_process(*args) as url:
        store = tmp_path / "scan.db"
        cfg = media_config(tmp_path / "c.toml", url, store)
        log = tmp_path / "scan.log"
        points: list[Callable[[dict[str, Any]], bool]] = [
            lambda s: s["jobs_submitted"] >= 12,
            lambda s: s["jobs_submitted"] >= 40,
            lambda s: s["jobs_submitted"] >= 70,
        ]
        stored: dict[str, str] = {}  # JobIds in the store when a run was killed
        for point in points:
            proc = scan(cfg, log)
            wait_until(lambda p=point: p(stats(url)), proc)  # type: ignore[misc]
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
            stored.update(dict(db_rows(store, "SELECT kind || ':' || key, job_id FROM jobs")))
        proc = scan(cfg, log)
        assert proc.wait(timeout=180) == 0, log.read_text()
        s = stats(url, detail=True)
    assert stored, "jobs were stored before the kills"
    assert_done_whole(store, OBJECTS)
    assert db_rows(store, "SELECT key FROM verdicts WHERE verdict_from = key") == []
    job_ids: dict[str, list[str]] = s["job_ids"]
    for name, job_id in stored.items():  # asked about after the kill, never submitted again
        assert job_ids[name][-1] == job_id, name
    twice = [name for name, ids in job_ids.items() if len(ids) > 1]
    print(f"kills=3 jobs={s['jobs_submitted']} submitted_twice={len(twice)} stored={len(stored)}")
    assert len(twice) <= len(points) * CONCURRENCY  # only submits whose answer the kill took
    reaudited = sum(n - 1 for n in s["audits"].values())
    assert reaudited <= len(points) * IN_FLIGHT
    verdicts = dict(db_rows(store, "SELECT key, result FROM verdicts"))
    failures = dict(db_rows(store, "SELECT key, code FROM failures"))
    finals = dict(db_rows(store, "SELECT kind || ':' || key, job_id FROM jobs"))
    media = [k for k, o in album.objects.items() if kind_of(k) and o.size
             and o.storage_class not in ("ARCHIVE", "DEEP_ARCHIVE")]  # fmt: skip
    assert len(media) > 80
    for key in media:  # none lost: each has its rules' outcome, from its last job
        kind = kind_of(key)
        assert kind is not None
        rules = media_verdict(kind, key, album.objects[key], DEFAULT_SCENES)
        if rules.code:
            assert failures[key] == rules.code, key
        else:
            assert verdicts[key] == (rules.hit.result if rules.hit else 0), key
        assert finals[f"{kind}:{key}"] == job_ids[f"{kind}:{key}"][-1]
