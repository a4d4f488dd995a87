"""The moderation job client (reference 12) against the emulator over HTTP: the request body
the reference documents, states that mean "later", verdicts by the album's rules (a document's
Suggestion is its Result), units billed, per-job failures with the job's Code, and the
lost-answer rule on submits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from scanner.audit.jobs import JobClient, decode_query, encode_job
from scanner.audit.policy import audit_options
from scanner.config import AuditSettings, FreezeSettings
from scanner.config.settings import JobSettings, VideoSettings
from scanner.cos.client import HttpClient
from scanner.cos.xml import parse
from scanner.emulator import Bucket, EmulatorState, running
from scanner.emulator.bucket import MB, StoredObject, etag_of
from scanner.emulator.media import media_verdict, pages_of, seconds_of
from scanner.emulator.rules import DEFAULT_SCENES
from scanner.media import frame_count
from scanner.models import AuditItem, Result
from tests.helpers import CREDS, FAST_RETRY, Emulator, FakeClock

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = {
    "video": "albums/u1/clip_nsfw.mp4",
    "audio": "albums/u1/voice_ad_.m4a",
    "document": "albums/u1/report.pdf",
    "broken": "albums/u1/corrupt.mov",
}


def _bucket() -> Bucket:
    bucket = Bucket()
    sizes = {"video": 30 * MB, "audio": 2 * MB, "document": 3 * MB, "broken": 5 * MB}
    for name, key in KEYS.items():
        bucket.put(key, StoredObject(etag_of(key), sizes[name], WHEN))
    bucket.keys()
    return bucket


def _client(http: HttpClient, url: str, **video: Any) -> JobClient:
    options = audit_options(
        AuditSettings(), FreezeSettings(), ("image", "video", "audio", "document"),
        VideoSettings(**video),
    )  # fmt: skip
    cos = Emulator(EmulatorState(), url).cos()
    return JobClient(
        http, cos, AuditSettings(), JobSettings(), options, retry=FAST_RETRY, clock=FakeClock()
    )


def test_the_request_body_is_the_documented_one() -> None:
    options = audit_options(
        AuditSettings(biz_type="b1", detect_type="porn,ads"), FreezeSettings(porn_score=90),
        ("image", "video"), VideoSettings(snapshot_mode="Fps", snapshot_count=300,
                                          snapshot_interval=0.5, detect_content=True),
    )  # fmt: skip
    body = parse(encode_job("video", AuditItem("a/b <1>.mp4", "d1", "u9"), options))
    assert body.findtext("Input/Object") == "a/b <1>.mp4"
    assert body.findtext("Input/DataId") == "d1"
    assert body.findtext("Input/UserInfo/TokenId") == "u9"
    assert body.findtext("Conf/BizType") == "b1"
    assert body.findtext("Conf/DetectType") == "Porn,Ads"
    assert [body.findtext(f"Conf/Snapshot/{t}") for t in ("Mode", "Count", "TimeInterval")] == [
        "Fps", "300", "0.5"
    ]  # fmt: skip
    assert body.findtext("Conf/DetectContent") == "1"
    assert body.findtext("Conf/Freeze/PornScore") == "90"
    doc = parse(encode_job("document", AuditItem("x/report.PDF", "d2"), options))
    assert doc.findtext("Input/Type") == "pdf"
    assert doc.find("Conf/Snapshot") is None
    url = parse(encode_job("audio", AuditItem("k.mp3", "d3", url="https://h/k.mp3"), options))
    assert url.findtext("Input/Url") == "https://h/k.mp3"
    assert url.find("Input/Object") is None
    assert url.find("Conf/Freeze") is None  # Freeze only for Object inputs (reference 12.3)


def test_a_document_suggestion_is_its_result_and_scores_come_from_the_scenes() -> None:
    answer = decode_query(
        b"<Response><JobsDetail><JobId>sd1</JobId><State>Success</State><Label>Ads</Label>"
        b"<Suggestion>2</Suggestion><PageCount>7</PageCount><Labels><AdsInfo><HitFlag>2</HitFlag>"
        b"<Score>77</Score></AdsInfo></Labels></JobsDetail></Response>",
        AuditItem("a.pdf", "d"),
    )
    assert answer.verdict is not None
    assert (answer.verdict.result, answer.verdict.label, answer.verdict.score) == (
        Result.SUSPICIOUS, "Ads", 77
    )  # fmt: skip
    assert answer.units.pages == 7
    later = decode_query(
        b"<Response><JobsDetail><JobId>av1</JobId><State>Snapshoting</State></JobsDetail>"
        b"</Response>", AuditItem("a.mp4", "d"),
    )  # fmt: skip
    assert (later.state, later.verdict) == ("Snapshoting", None)


async def _until_final(client: JobClient, kind: str, job_id: str, item: AuditItem) -> Any:
    states = []
    for _ in range(100):
        answer = await client.query(kind, job_id, item)
        states.append(answer.state)
        if answer.final:
            return answer, states
        await anyio.sleep(0.05)
    raise AssertionError(f"job never ended: {states}")


async def test_jobs_move_through_their_states_and_end_with_the_rules_verdict() -> None:
    state = EmulatorState(bucket=_bucket(), seed=1, job_seconds=0.6)
    async with running(state) as url, HttpClient(CREDS) as http:
        client = _client(http, url, snapshot_count=50, snapshot_interval=2.0, detect_content=True)
        for kind in ("video", "audio", "document"):
            key = KEYS[kind]
            item = AuditItem(key, "d-" + kind, "u1")
            sub = await client.submit(kind, item)
            assert not sub.failed, sub
            assert sub.job_id.startswith({"video": "av", "audio": "sa", "document": "sd"}[kind])
            answer, states = await _until_final(client, kind, sub.job_id, item)
            assert states[0] == "Submitted"
            assert answer.state == "Success"
            rules = media_verdict(kind, key, state.bucket.objects[key], DEFAULT_SCENES)
            v = answer.verdict
            expected = (rules.hit.result, rules.hit.scene) if rules.hit else (0, "Normal")
            assert (int(v.result), v.label) == expected, key
            assert v.raw.startswith("<JobsDetail>")
            assert sub.job_id in v.raw
            size = state.bucket.objects[key].size
            if kind == "video":
                assert answer.units.frames == frame_count(seconds_of("video", size), "Interval",
                                                          50, 2.0)  # fmt: skip
                assert answer.units.seconds == seconds_of("video", size)  # the soundtrack
            if kind == "audio":
                assert answer.units.seconds == seconds_of("audio", size)
            if kind == "document":
                assert answer.units.pages == pages_of(size)
        broken = AuditItem(KEYS["broken"], "d-b")
        sub = await client.submit("video", broken)
        answer, _ = await _until_final(client, "video", sub.job_id, broken)
        assert answer.state == "Failed"
        assert (answer.verdict.code, answer.verdict.message) == ("-1200", "media decode failed")
        assert not answer.verdict.retryable
        gone = await client.query("video", "av" + "0" * 30, broken)
        assert gone.verdict is not None
        assert gone.verdict.code == "job-not-found"
    assert all(n == 1 for n in state.stats.jobs_submitted.values())


@pytest.mark.parametrize("lost", [1, 2])
async def test_a_submit_whose_answer_was_lost_is_resent_once_then_fails_maybe_billed(
    lost: int,
) -> None:
    state = EmulatorState(bucket=_bucket(), seed=1, job_seconds=0.2)
    state.faults.targets = ["jobs"]
    state.faults.truncate_next = lost
    async with running(state) as url, HttpClient(CREDS) as http:
        client = _client(http, url)
        sub = await client.submit("audio", AuditItem(KEYS["audio"], "d"))
    submitted = state.stats.jobs_submitted[f"audio:{KEYS['audio']}"]
    assert submitted == 2  # the original and one resend ([audit] resend_after_timeout = 1)
    assert sub.maybe_double
    if lost == 1:
        assert not sub.failed
        assert sub.job_id == state.stats.job_ids[f"audio:{KEYS['audio']}"][-1]
    else:
        assert sub.code == "timeout-maybe-billed"


async def test_a_job_the_service_refuses_is_that_objects_failure() -> None:
    state = EmulatorState(bucket=_bucket(), seed=1)
    async with running(state) as url, HttpClient(CREDS) as http:
        client = _client(http, url)
        sub = await client.submit("audio", AuditItem("albums/u1/nowhere.pdf", "d"))
        assert sub.code == "InvalidArgument"
        assert "not a audio file" in sub.message
        client.options = replace(client.options, video=(("snapshot_mode", "Interval"),
                                                        ("snapshot_count", "0"),
                                                        ("snapshot_interval", "1"),
                                                        ("detect_content", "0")))  # fmt: skip
        bad = await client.submit("video", AuditItem(KEYS["video"], "d"))
        assert bad.failed
        assert bad.code == "InvalidArgument"


async def test_an_unreadable_query_answer_is_asked_again_not_a_failure() -> None:
    state = EmulatorState(bucket=_bucket(), seed=1, job_seconds=0.1)
    async with running(state) as url, HttpClient(CREDS) as http:
        client = _client(http, url)
        item = AuditItem(KEYS["audio"], "d")
        sub = await client.submit("audio", item)
        await anyio.sleep(0.2)
        state.faults.targets = ["jobs"]
        state.faults.malformed_rate = 1.0  # 200 with half an XML body
        garbled = await client.query("audio", sub.job_id, item)
        assert not garbled.final
        assert garbled.unreadable is not None
        assert garbled.unreadable.code == "unreadable-answer"
        state.faults.malformed_rate = 0.0
        answer = await client.query("audio", sub.job_id, item)
    assert answer.final
    assert answer.state == "Success"
    assert state.stats.jobs_submitted[f"audio:{KEYS['audio']}"] == 1
