"""The emulator's moderation jobs for videos, voice and documents (reference 12): the official
SDK's submit and query calls work against it; jobs move through their states and end with the
album's rules' verdict; the synthetic album's `media` share is deterministic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio

from scanner.emulator import (
    DEFAULT_BUCKET,
    EmulatorState,
    running,
    synthetic,
)
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.emulator.media import kind_of, media_verdict, seconds_of
from scanner.emulator.rules import DEFAULT_SCENES
from scanner.media import frame_count
from tests.helpers import sdk_client


def test_the_media_share_changes_only_what_it_makes_media() -> None:
    plain, mixed = synthetic(2000, 3), synthetic(2000, 3, media=0.08)
    kinds = [kind_of(k) for k in mixed.objects]
    assert 0.05 < sum(k is not None for k in kinds) / len(kinds) < 0.14  # 3 % were files before
    assert kinds.count("video") > kinds.count("audio") > kinds.count("document") > 0
    same = set(plain.objects) & set(mixed.objects)
    assert len(same) > 1700  # the rest of the album is as it was
    assert all(plain.objects[k].etag == mixed.objects[k].etag for k in same)


async def test_the_sdks_video_audio_and_document_calls_work_against_the_emulator() -> None:
    bucket = synthetic(3000, 5, media=0.1)
    state = EmulatorState(bucket=bucket, seed=5, job_seconds=0.6)
    picks = {}
    for key, obj in bucket.objects.items():
        kind = kind_of(key)
        if kind and obj.size and kind not in picks:
            picks[kind] = key
    assert set(picks) == {"video", "audio", "document"}
    async with running(state) as url:
        client = sdk_client(url)

        def submit_all() -> dict[str, str]:
            ids = {}
            video = client.ci_auditing_video_submit(
                Bucket=DEFAULT_BUCKET, Key=picks["video"], Mode="Interval", Count=50,
                TimeInterval=2.0, DetectContent=1, DataId="v1",
            )  # fmt: skip
            ids["video"] = video["JobsDetail"]["JobId"]
            audio = client.ci_auditing_audio_submit(Bucket=DEFAULT_BUCKET, Key=picks["audio"])
            ids["audio"] = audio["JobsDetail"]["JobId"]
            doc = client.ci_auditing_document_submit(Bucket=DEFAULT_BUCKET, Key=picks["document"])
            ids["document"] = doc["JobsDetail"]["JobId"]
            assert video["JobsDetail"]["State"] == "Submitted"
            return ids

        ids = await anyio.to_thread.run_sync(submit_all)
        assert ids["video"].startswith("av")

        def query(kind: str) -> Any:
            call = getattr(client, f"ci_auditing_{kind}_query")
            return call(Bucket=DEFAULT_BUCKET, JobID=ids[kind])["JobsDetail"]

        first = await anyio.to_thread.run_sync(query, "video")
        assert first["State"] in ("Submitted", "Snapshoting", "Auditing")
        await anyio.sleep(0.7)
        done = {k: await anyio.to_thread.run_sync(query, k) for k in ids}
    for kind, detail in done.items():
        assert detail["State"] == "Success", detail
        obj = bucket.objects[picks[kind]]
        expect = media_verdict(kind, picks[kind], obj, DEFAULT_SCENES)
        label = expect.hit.scene if expect.hit else "Normal"
        assert detail["Label"] == label
        result = detail["Suggestion"] if kind == "document" else detail["Result"]
        assert int(result) == (expect.hit.result if expect.hit else 0)
    frames = frame_count(
        seconds_of("video", bucket.objects[picks["video"]].size), "Interval", 50, 2.0
    )
    assert int(done["video"]["SnapshotCount"]) == frames
    assert state.stats.job_units["video"] == frames * len(DEFAULT_SCENES)
    assert state.stats.max_jobs_running == 3
    assert sum(state.stats.jobs_submitted.values()) == 3


async def test_the_sdks_text_calls_work_against_the_emulator() -> None:
    """The fourth job type: text Content is judged at once (the submit's answer is the
    result); a text file is a job like the others."""
    bucket = synthetic(200, 5)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    bucket.put("notes/ad_flyer.txt", StoredObject(etag_of("notes/ad_flyer.txt"), 2_000, when))
    bucket.keys()
    state = EmulatorState(bucket=bucket, seed=5, job_seconds=0.3)
    async with running(state) as url:
        client = sdk_client(url)

        def submit() -> tuple[Any, Any]:
            now = client.ci_auditing_text_submit(
                Bucket=DEFAULT_BUCKET, Content="加微信 领红包 ad_".encode(), DataId="t1"
            )
            later = client.ci_auditing_text_submit(Bucket=DEFAULT_BUCKET, Key="notes/ad_flyer.txt")
            return now["JobsDetail"], later["JobsDetail"]

        at_once, job = await anyio.to_thread.run_sync(submit)
        assert at_once["State"] == "Success"
        assert at_once["Label"] == "Ads"
        assert at_once["Section"][0]["AdsInfo"]["Keywords"]
        assert job["State"] == "Submitted"
        await anyio.sleep(0.4)

        def query() -> Any:
            return client.ci_auditing_text_query(Bucket=DEFAULT_BUCKET, JobID=job["JobId"])

        done = (await anyio.to_thread.run_sync(query))["JobsDetail"]
    assert done["State"] == "Success"
    assert (done["Label"], int(done["Result"])) == ("Ads", 2)
    assert done["SectionCount"] == "1"
