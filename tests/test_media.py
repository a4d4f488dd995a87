"""Scans of albums with videos, voice notes and documents (`[scan] media`), in this process
against the in-process emulator and a real SQLite file: every object gets its rules' verdict,
jobs in flight stay under `[jobs] concurrency`, no job is submitted twice, a stop and a resume
ask about stored jobs, a nightly re-audits exactly the videos whose options changed, copies
are paid once, and the default (images only) submits nothing."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from scanner.config import Config
from scanner.config.settings import AudioSettings, JobSettings, VideoSettings
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.bucket import MB, StoredObject, etag_of
from scanner.emulator.media import kind_of, media_verdict, seconds_of
from scanner.emulator.rules import DEFAULT_SCENES
from scanner.media import frame_count
from scanner.models import Target
from scanner.scan import jobs as job_stage
from scanner.scan.progress import Progress
from scanner.store import Store
from tests.helpers import ENV, config, db_rows, estimate, estimate_json, run_scan
from tests.helpers import scan_outcome as scan

ALL = ("image", "video", "audio", "document")


def media_config(url: str, tmp_path: Path, *, concurrency: int = 4, **video: Any) -> Config:
    cfg = config(url, tmp_path, batch_size=50)
    return replace(
        cfg,
        scan=replace(cfg.scan, media=ALL),
        jobs=JobSettings(concurrency=concurrency, qps=500.0, poll_interval=0.05, poll_max=0.2),
        video=VideoSettings(**video),
    )


def expected(state: EmulatorState, key: str) -> tuple[str, int | None, str]:
    """(failure code or "", Result, Label) the album's rules give a media object."""
    kind = kind_of(key)
    assert kind is not None
    rules = media_verdict(kind, key, state.bucket.objects[key], DEFAULT_SCENES)
    if rules.code:
        return rules.code, None, ""
    return "", (rules.hit.result if rules.hit else 0), (rules.hit.scene if rules.hit else "Normal")


def outcomes(cfg: Config) -> dict[str, tuple[str, int | None, str]]:
    store = Path(cfg.store.path)
    rows = db_rows(store, "SELECT key, result, label FROM verdicts")
    got: dict[str, tuple[str, int | None, str]] = {k: ("", r, label) for k, r, label in rows}
    got.update({k: (c, None, "") for k, c in db_rows(store, "SELECT key, code FROM failures")})
    return got


def media_keys(state: EmulatorState) -> list[str]:
    """The album's videos, voice notes and documents a scan audits (not empty, not archived)."""
    return [
        k for k, o in state.bucket.objects.items()
        if kind_of(k) and o.size and o.storage_class not in ("ARCHIVE", "DEEP_ARCHIVE")
    ]  # fmt: skip


async def test_an_album_with_videos_voice_and_documents_gets_every_verdict(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(1500, 8, media=0.08), seed=8, job_seconds=0.2)
    async with running(state) as url:
        cfg = media_config(url, tmp_path, concurrency=6)
        assert await scan(cfg) == "done"
        got = outcomes(cfg)
        async with await Store.open(cfg.store.path) as store:
            status = await store.latest_scan(Target.of(cfg.cos))
            assert status is not None
            counts = await store.job_counts(status.id)
    keys = media_keys(state)
    kinds = {kind_of(k) for k in keys}
    assert kinds == {"video", "audio", "document"}
    for key in keys:
        assert got[key] == expected(state, key), key
    assert {k for k in keys if got[k][1]}, "some media are flagged by the rules"
    assert status.listed == status.audited + status.failed + status.skipped  # I1
    s = state.stats.as_json(False)
    assert s["jobs_submitted"] == len(keys)
    assert s["jobs_submitted_twice"] == 0
    assert 1 < s["max_jobs_running"] <= 6  # [jobs] concurrency, as the emulator saw it
    assert counts["video"]["frames"] * len(DEFAULT_SCENES) == state.stats.job_units["video"]
    assert counts["document"]["pages"] * len(DEFAULT_SCENES) == state.stats.job_units["document"]
    assert counts["audio"]["seconds"] == state.stats.job_units["audio_seconds"]
    assert sum(c["jobs"] for c in counts.values()) == len(keys)
    # the images were audited as ever, beside the jobs
    assert set(state.stats.audits) == {k for k, v in got.items() if v[1] is not None} - set(keys)


async def test_by_default_only_images_are_audited_and_the_others_skipped_by_class(
    tmp_path: Path,
) -> None:
    state = EmulatorState(bucket=synthetic(1500, 8, media=0.08), seed=8)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        assert await scan(cfg) == "done"
    sql = "SELECT reason, COUNT(*) FROM scan_objects WHERE state = 'skipped' GROUP BY reason"
    reasons = dict(db_rows(Path(cfg.store.path), sql))
    per_kind = dict.fromkeys(("video", "audio", "document"), 0)
    for key in media_keys(state):
        per_kind[kind_of(key) or ""] += 1
    for kind, n in per_kind.items():
        assert reasons[f"{kind}-not-enabled"] >= n > 0
    assert state.stats.as_json(False)["jobs_submitted"] == 0


async def test_a_stop_leaves_jobs_in_flight_stored_and_the_resume_asks_about_them(
    tmp_path: Path,
) -> None:
    state = EmulatorState(bucket=synthetic(1000, 4, media=0.1), seed=4, job_seconds=0.5)
    async with running(state) as url:
        cfg = media_config(url, tmp_path, concurrency=8)
        stop, progress = anyio.Event(), Progress()

        async def stop_once_jobs_run() -> None:
            await state.stats.changes.until(lambda: sum(state.stats.jobs_submitted.values()) >= 8)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_once_jobs_run)
            with anyio.fail_after(60):
                first = await run_scan(cfg, stop, progress)
        assert first.outcome == "interrupted"
        open_jobs = db_rows(Path(cfg.store.path), "SELECT key, job_id FROM jobs WHERE "
                            "state NOT IN ('Success', 'Failed')")  # fmt: skip
        assert open_jobs, "jobs were in flight at the stop"
        assert await scan(cfg) == "done"
        got = outcomes(cfg)
    s = state.stats
    assert s.as_json(False)["jobs_submitted_twice"] == 0
    own = db_rows(Path(cfg.store.path), "SELECT key FROM verdicts WHERE verdict_from = key")
    assert own == []  # a resumed job's object is its own verdict, not a copy of itself
    for key, job_id in open_jobs:  # asked about, never submitted again
        assert s.job_ids[f"{kind_of(key)}:{key}"] == [job_id]
        assert got[key] == expected(state, key)
    for key in media_keys(state):
        assert got[key] == expected(state, key), key


async def test_a_nightly_re_audits_exactly_the_videos_whose_options_changed(
    tmp_path: Path,
) -> None:
    state = EmulatorState(bucket=synthetic(1200, 9, media=0.1), seed=9, job_seconds=0.1)
    async with running(state) as url:
        cfg = media_config(url, tmp_path)
        assert await scan(cfg) == "done"
        first = dict(state.stats.jobs_submitted)
        assert await scan(cfg, mode="incremental") == "done"
        assert dict(state.stats.jobs_submitted) == first  # nothing changed: nothing submitted
        audits = sum(state.stats.audits.values())
        changed = replace(cfg, video=VideoSettings(snapshot_count=20))
        assert await scan(changed, mode="incremental") == "done"
        again = {k: n - first.get(k, 0) for k, n in state.stats.jobs_submitted.items()}
        assert sum(state.stats.audits.values()) == audits  # no image re-audited
    videos = {f"video:{k}" for k in media_keys(state) if kind_of(k) == "video"}
    assert {k for k, n in again.items() if n} == videos


async def test_copies_of_a_video_are_paid_once_and_a_queue_overflow_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_stage, "QUEUE_CAPACITY", 3)
    bucket = synthetic(600, 6, media=0.15)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    original = StoredObject("e" * 32, 8 * MB, when)
    for n in range(4):
        bucket.put(f"forwarded/{n}/clip.mp4", replace(original, content="forwarded/0/clip.mp4"))
    bucket.keys()
    state = EmulatorState(bucket=bucket, seed=6, job_seconds=0.1)
    async with running(state) as url:
        cfg = media_config(url, tmp_path, concurrency=6)
        assert await scan(cfg) == "done"
        got = outcomes(cfg)
    submitted = state.stats.jobs_submitted
    assert sum(submitted[f"video:forwarded/{n}/clip.mp4"] for n in range(4)) == 1
    for n in range(4):
        assert got[f"forwarded/{n}/clip.mp4"] == got["forwarded/0/clip.mp4"]
    for key in media_keys(state):
        if not key.startswith("forwarded/"):
            assert submitted[f"{kind_of(key)}:{key}"] == 1, key
            assert got[key] == expected(state, key), key


async def test_the_dry_runs_ranges_hold_what_was_billed_and_are_exact_once_measured(
    tmp_path: Path,
) -> None:
    state = EmulatorState(bucket=synthetic(1500, 10, media=0.08), seed=10, job_seconds=0.1)
    async with running(state) as url:
        cfg = media_config(url, tmp_path, snapshot_count=40, snapshot_interval=2.0,
                           detect_content=True)  # fmt: skip
        cfg = replace(cfg, audit=replace(cfg.audit, detect_type="porn,ads"),
                      video=replace(cfg.video, unit_price=0.001),
                      audio=AudioSettings(unit_price=0.01))  # fmt: skip
        before = estimate_json(await estimate(cfg), cfg)
        assert await scan(cfg) == "done"
        after = estimate_json(await estimate(cfg, force=True), cfg, force=True)
    media, units = before["media"], state.stats.job_units
    counts = {k: sum(1 for m in media_keys(state) if kind_of(m) == k) for k in media}
    assert {k: media[k]["objects"] for k in media} == counts
    assert before["images"] == len(state.stats.sent)  # the images' figure is exact as ever
    frames = units["video"] / 2  # billed frames x 2 scenes
    low, high = media["video"]["frames"]
    assert low <= frames <= high
    low, high = media["video"]["billed_units"]
    assert low <= units["video"] <= high
    s_low, s_high = media["video"]["sound_minutes"]
    assert media["video"]["price"] == [
        round(low * 0.001 + s_low * 0.01, 6), round(high * 0.001 + s_high * 0.01, 6)
    ]  # fmt: skip
    seconds = units["audio_seconds"]  # voice notes and soundtracks
    sound = (
        media["audio"]["minutes"][0] + media["video"]["sound_minutes"][0],
        (media["audio"]["minutes"][1] + media["video"]["sound_minutes"][1]),
    )
    assert sound[0] <= seconds / 60 <= sound[1]
    low, high = media["document"]["pages"]
    assert low <= units["document"] / 2 <= high
    assert not media["document"]["exact"]
    # a --force rescan of the same bytes: each figure measured by the jobs, exactly
    exact = after["media"]
    assert all(row["exact"] for row in exact.values())
    assert exact["video"]["frames"] == [frames, frames]
    assert exact["document"]["pages"] == [units["document"] / 2] * 2
    assert exact["audio"]["minutes"][0] == exact["audio"]["minutes"][1]


async def test_report_has_a_media_column_and_frames_lists_what_was_flagged_with_offsets(
    tmp_path: Path,
) -> None:
    bucket = synthetic(300, 2)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    crafted = {"u1/clip_nsfw.mp4": 40 * MB, "u1/voice_ad_.m4a": 700_000,
               "u1/nsfw_slides.pdf": 900_000, "u1/plain_holiday.mp4": 9 * MB}  # fmt: skip
    for key, size in crafted.items():
        bucket.put(key, StoredObject(etag_of(key), size, when))
    bucket.keys()
    state = EmulatorState(bucket=bucket, seed=2, job_seconds=0.1)
    async with running(state) as url:
        cfg = media_config(url, tmp_path, snapshot_count=60, snapshot_interval=2.0)
        assert await scan(cfg) == "done"
        cfg_file = tmp_path / "c.toml"
        cfg_file.write_text(f'[cos]\nbucket = "{cfg.cos.bucket}"\nendpoint = "{url}"\n'
                            f'[store]\npath = "{cfg.store.path}"\n')  # fmt: skip
        rows = list(csv.DictReader(io.StringIO(await cli(cfg_file, "report"))))
        jsonl = await cli(cfg_file, "report", "--frames", "--format", "jsonl")
        frames = [json.loads(line) for line in jsonl.splitlines()]
        table = list(csv.DictReader(io.StringIO(await cli(cfg_file, "report", "--frames"))))
        spend = json.loads(await cli(cfg_file, "report", "--spend", "--format", "json"))
        units = dict(state.stats.job_units)
    media = {r["key"]: r["media"] for r in rows}
    assert media["u1/clip_nsfw.mp4"] == "video"
    assert media["u1/voice_ad_.m4a"] == "audio"
    assert media["u1/nsfw_slides.pdf"] == "document"
    assert {media[k] for k in media if k.endswith((".jpg", ".png"))} == {"image"}
    by_key: dict[str, list[dict[str, Any]]] = {}
    for f in frames:
        by_key.setdefault(f["key"], []).append(f)
    assert "u1/plain_holiday.mp4" not in by_key  # nothing flagged, nothing listed
    video = by_key["u1/clip_nsfw.mp4"]
    seconds = seconds_of("video", 40 * MB)
    count = frame_count(seconds, "Interval", 60, 2.0)
    step = seconds * 1000 // count
    assert [f["offset_ms"] for f in video] == [i * step for i in range(2, count, 10)]
    assert {(f["kind"], f["label"], f["result"]) for f in video} == {("frame", "Porn", 1)}
    assert all("ci-process=snapshot" in f["url"] for f in video)
    (voice,) = by_key["u1/voice_ad_.m4a"]
    assert (voice["kind"], voice["offset_ms"], voice["duration_ms"]) == ("section", 0, 15_000)
    assert voice["label"] == "Ads"
    assert voice["text"]
    assert voice["keywords"]
    (page,) = by_key["u1/nsfw_slides.pdf"]
    assert (page["kind"], page["page"], page["label"]) == ("page", 1, "Porn")
    assert len(table) == len(frames)
    (row,) = spend["rows"]  # one scan: its jobs per class, as the emulator billed them
    kinds = [kind_of(k) for k in media_keys(state)]
    assert (row["videos"], row["voice_notes"], row["documents"]) == tuple(
        kinds.count(k) for k in ("video", "audio", "document")
    )
    assert row["video_frames"] * 5 == units["video"]  # frames x the default 5 scenes
    assert row["document_pages"] * 5 == units["document"]
    assert row["sound_minutes"] == round(units["audio_seconds"] / 60, 2)
    assert row["billed_images"] == len(state.stats.audits)  # images only
    assert table[0].keys() >= {"key", "media", "job_id", "offset_ms", "page", "keywords", "url"}


async def cli(cfg_file: Path, *args: str) -> str:
    argv = [sys.executable, "-m", "scanner", *args, "--config", str(cfg_file)]
    done = await anyio.run_process(argv, env=ENV, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def test_throttled_jobs_slow_down_and_every_object_still_gets_its_verdict(
    tmp_path: Path,
) -> None:
    state = EmulatorState(bucket=synthetic(400, 13, media=0.1), seed=13, job_seconds=0.1)
    state.faults.targets = ["jobs"]
    state.faults.jobs_qps_cap = 15.0  # submits and queries past 15 a second: 503 SlowDown
    async with running(state) as url:
        cfg = media_config(url, tmp_path, concurrency=6)
        cfg = replace(cfg, jobs=replace(cfg.jobs, poll_interval=0.2, poll_max=0.4))
        assert await scan(cfg) == "done"
        got = outcomes(cfg)
    s = state.stats.as_json(False)
    assert s["faults"].get("throttled", 0) > 0
    assert s["jobs_submitted_twice"] == 0  # a throttled submit was not taken: sent again freely
    for key in media_keys(state):
        assert got[key] == expected(state, key), key
