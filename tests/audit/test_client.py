"""AuditClient against the emulator: verdicts by the documented rules, failures, retries."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from scanner.audit.client import AuditClient
from scanner.cos.client import HttpClient
from scanner.emulator import EmulatorState
from scanner.emulator.bucket import MB, StoredObject, etag_of
from scanner.emulator.rules import verdict_for
from scanner.errors import AuthError, ServiceError, ThrottledError, TransportError
from scanner.models import AuditItem, Result
from tests.helpers import FAST_RETRY, Emulator, FakeClock, make_auditor

KEYS = {
    "ok/normal.jpg": 100_000,
    "ok/nsfw_beach.png": 200_000,
    "ok/ad_flyer.webp": 300_000,
    "bad/empty.jpg": 0,
    "bad/movie.mp4": 1000,
    "bad/huge.jpg": 40 * MB,
    "bad/big.jpg": 8 * MB,
    "bad/corrupt.gif": 5000,
}


@pytest.fixture
def album(state: EmulatorState) -> dict[str, int]:
    for key, size in KEYS.items():
        state.bucket.put(key, StoredObject(etag_of(key), size, datetime.now(UTC)))
    return KEYS


def items(keys: list[str]) -> list[AuditItem]:
    return [AuditItem(k, f"d{i}") for i, k in enumerate(keys)]


async def test_verdicts_follow_the_rules(
    emulator: Emulator, auditor: AuditClient, album: dict[str, int]
) -> None:
    keys = [*album, "missing.jpg"]
    results = await auditor.moderate(items(keys))
    by_key = {r.key: r for r in results}
    assert by_key["ok/normal.jpg"].result == Result(
        verdict_for("ok/normal.jpg", emulator.state.bucket.objects["ok/normal.jpg"]).result
    )
    porn = by_key["ok/nsfw_beach.png"]
    assert (porn.result, porn.label, porn.score) == (Result.SENSITIVE, "Porn", 95)
    assert porn.scenes["PornInfo"].hit_flag == 1
    assert porn.scenes["PornInfo"].lib_results
    assert porn.list_results[0].list_type == 1
    ads = by_key["ok/ad_flyer.webp"]
    assert (ads.result, ads.label, ads.text) == (Result.SUSPICIOUS, "Ads", "加微信 领红包")
    assert ads.scenes["AdsInfo"].ocr_results[0].keywords == ("加微信", "领红包")
    failures = {k: (r.code, r.retryable) for k, r in by_key.items() if r.failed}
    assert failures == {
        "bad/empty.jpg": ("-65007", False),
        "bad/movie.mp4": ("-65013", False),
        "bad/huge.jpg": ("-65011", False),
        "bad/big.jpg": ("-65011", False),
        "bad/corrupt.gif": ("-65007", False),
        "missing.jpg": ("-61011", False),
    }
    stats = emulator.state.stats
    assert stats.audits == {"ok/normal.jpg": 1, "ok/nsfw_beach.png": 1, "ok/ad_flyer.webp": 1}
    assert stats.billed_units == 3 * 5


async def test_large_image_detect_and_detect_type(
    emulator: Emulator, http: HttpClient, clock: FakeClock, album: dict[str, int]
) -> None:
    auditor = make_auditor(http, emulator, clock, large_image_detect=True, detect_type="Ads")
    big, nsfw = await auditor.moderate(items(["bad/big.jpg", "ok/nsfw_beach.png"]))
    assert not big.failed
    assert big.compression_result == 1
    assert nsfw.result == Result.NORMAL  # Porn was not asked for
    assert set(nsfw.scenes) == {"AdsInfo"}
    assert emulator.state.stats.billed_units == 2


async def test_per_image_failures_injected_are_retryable(
    emulator: Emulator, auditor: AuditClient, album: dict[str, int]
) -> None:
    emulator.state.faults.image_failure_rate = 1.0
    (r,) = await auditor.moderate(items(["ok/normal.jpg"]))
    assert (r.code, r.retryable) == ("-65010", True)
    assert not emulator.state.stats.audits


async def test_throttling_shrinks_the_budget_then_succeeds(
    emulator: Emulator, auditor: AuditClient, album: dict[str, int]
) -> None:
    emulator.state.faults.fail_next = [503]
    before = auditor.budget.rate.rate
    (r,) = await auditor.moderate(items(["ok/normal.jpg"]))
    assert not r.failed
    assert auditor.budget.rate.throttled == 1
    assert auditor.budget.rate.rate < before
    assert emulator.state.stats.audits["ok/normal.jpg"] == 1


async def test_qps_cap_answers_slowdown(
    emulator: Emulator, http: HttpClient, clock: FakeClock, album: dict[str, int]
) -> None:
    emulator.state.faults.qps_cap = 1
    from scanner.retry import RetryPolicy

    auditor = make_auditor(http, emulator, clock)
    auditor._retry = RetryPolicy(
        attempts=1, deadline=1e-9, wait_initial=1.0, wait_max=1.0, patience=1e-9
    )
    await auditor.moderate(items(["ok/normal.jpg"]))
    with pytest.raises(ThrottledError) as info:
        await auditor.moderate(items(["ok/normal.jpg"]))
    assert (info.value.status, info.value.code) == (503, "SlowDown")


async def test_5xx_then_succeeds(
    emulator: Emulator, auditor: AuditClient, album: dict[str, int]
) -> None:
    emulator.state.faults.fail_next = [500]
    (r,) = await auditor.moderate(items(["ok/normal.jpg"]))
    assert not r.failed
    assert emulator.state.stats.requests["audit"] == 2


async def test_dropped_and_unknown_results(
    emulator: Emulator, auditor: AuditClient, album: dict[str, int]
) -> None:
    emulator.state.faults.body_mode = "drop_one"
    results = await auditor.moderate(items(["ok/normal.jpg", "ok/ad_flyer.webp"]))
    assert [r.code for r in results] == ["", "NoResult"]
    emulator.state.faults.body_mode = "unknown_id"
    results = await auditor.moderate(items(["ok/normal.jpg", "ok/ad_flyer.webp"]))
    assert [r.code for r in results] == ["NoResult", ""]


async def test_malformed_answer_fails_its_images_not_the_scan(
    emulator: Emulator, auditor: AuditClient, album: dict[str, int]
) -> None:
    # it was billed (a 200): not sent again, the images fail with a reason, no exception
    emulator.state.faults.malformed_rate = 1.0
    results = await auditor.moderate(items(["ok/normal.jpg", "ok/ad_flyer.webp"]))
    assert {r.code for r in results} == {"unreadable-answer"}
    assert "unreadable audit answer" in results[0].message
    assert not any(r.retryable for r in results)
    assert emulator.state.stats.requests["audit"] == 1


async def test_lost_answer_is_resent_once_then_failed_maybe_billed(
    emulator: Emulator, http: HttpClient, clock: FakeClock, album: dict[str, int]
) -> None:
    # the service did (and billed) the batch; its answer trickles out past our timeout. Before
    # this, every attempt was billed again (3 of 3) and the images stayed pending.
    emulator.state.faults.slow_body = 2.0
    emulator.state.faults.targets = ["audit"]
    auditor = make_auditor(http, emulator, clock, timeout=0.3)
    names = ["ok/normal.jpg", "ok/ad_flyer.webp"]
    with anyio.fail_after(10):
        results = await auditor.moderate(items(names))
    assert [r.code for r in results] == ["timeout-maybe-billed"] * 2
    assert all(r.maybe_double for r in results)
    assert emulator.state.stats.requests["audit"] == 2  # the first try and one resend
    assert sum(emulator.state.stats.audits.values()) == 4  # what the service billed
    assert auditor.maybe_double == 2


async def test_lost_answer_resends_are_configurable(
    emulator: Emulator, http: HttpClient, clock: FakeClock, album: dict[str, int]
) -> None:
    emulator.state.faults.slow_body = 2.0
    emulator.state.faults.targets = ["audit"]
    auditor = make_auditor(http, emulator, clock, timeout=0.3, resend_after_timeout=0)
    with anyio.fail_after(10):
        (r,) = await auditor.moderate(items(["ok/normal.jpg"]))
    assert r.code == "timeout-maybe-billed"
    assert not r.maybe_double
    assert emulator.state.stats.requests["audit"] == 1


async def test_request_that_never_left_is_retried_freely(
    http: HttpClient, clock: FakeClock
) -> None:
    from scanner.audit.policy import audit_options
    from scanner.config import AuditSettings, CosSettings
    from scanner.emulator import DEFAULT_BUCKET
    from scanner.limiter import AuditBudget

    cos = CosSettings(bucket=DEFAULT_BUCKET, endpoint="http://127.0.0.1:9")  # refused
    auditor = AuditClient(http, cos, AuditSettings(), retry=FAST_RETRY, clock=clock,
                          budget=AuditBudget(1, 1000.0, clock),
                          options=audit_options(AuditSettings()))  # fmt: skip
    with pytest.raises(TransportError) as info:
        await auditor.moderate(items(["ok/normal.jpg"]))
    assert not info.value.maybe_sent
    assert auditor.requests == FAST_RETRY.attempts  # every try, none counted as maybe billed
    assert auditor.maybe_double == 0


async def test_ci_auth_errors_use_ci_codes(
    emulator: Emulator, clock: FakeClock, album: dict[str, int]
) -> None:
    from scanner.config import Credentials
    from scanner.emulator import DEFAULT_SECRET_ID

    async with HttpClient(Credentials(DEFAULT_SECRET_ID, "bad")) as http:
        auditor = make_auditor(http, emulator, clock)
        with pytest.raises(AuthError) as info:
            await auditor.moderate(items(["ok/normal.jpg"]))
    assert (info.value.status, info.value.code, info.value.service) == (
        401,
        "InvalidAuthorization",
        "audit",
    )


async def test_invalid_max_frames_is_per_image(
    emulator: Emulator, http: HttpClient, clock: FakeClock, album: dict[str, int]
) -> None:
    auditor = make_auditor(http, emulator, clock)
    object.__setattr__(auditor.options, "max_frames", -1)
    (r,) = await auditor.moderate(items(["ok/normal.jpg"]))
    assert (r.code, r.message) == ("InvalidArgument", "Param MaxFrames is illegal")


async def test_too_many_inputs_rejected_by_emulator(
    emulator: Emulator, http: HttpClient, clock: FakeClock
) -> None:
    from scanner.cos.client import ci_service

    body = ("<Request>" + "<Input><Object>a</Object></Input>" * 101 + "</Request>").encode()
    service = ci_service(emulator.cos(), make_auditor(http, emulator, clock)._settings)
    with pytest.raises(ServiceError) as info:
        await http.send(
            service, "POST", "/image/auditing", body=body, content_type="application/xml"
        )
    assert (info.value.status, info.value.code) == (400, "InvalidArgument")
