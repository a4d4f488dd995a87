"""Every error class of the transport, provoked for real against the emulator."""

from __future__ import annotations

import socket
import time

import pytest

from scanner.config import Credentials
from scanner.cos.client import HttpClient, cos_service
from scanner.cos.listing import Lister
from scanner.emulator import DEFAULT_SECRET_ID, EmulatorState, KeyPair
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.errors import (
    AuthError,
    ConfigError,
    ProtocolError,
    ServiceError,
    ThrottledError,
    TransportError,
)
from scanner.retry import RetryPolicy
from tests.helpers import FAST_RETRY, Emulator, FakeClock, make_lister

NO_RETRY = RetryPolicy(attempts=1, deadline=1.0, wait_initial=0.0, wait_max=0.0)
# throttling is bounded by the deadline: a first backoff past it means no retry at all
NO_WAITING = RetryPolicy(attempts=1, deadline=1e-9, wait_initial=1.0, wait_max=1.0, patience=1e-9)


def _put(state: EmulatorState, n: int = 3) -> None:
    from datetime import UTC, datetime

    for i in range(n):
        state.bucket.put(f"k{i}.jpg", StoredObject(etag_of(str(i)), 10, datetime.now(UTC)))


async def test_bad_signature_is_auth_error_with_request_id(
    emulator: Emulator, clock: FakeClock
) -> None:
    async with HttpClient(Credentials(DEFAULT_SECRET_ID, "wrong-key")) as http:
        lister = make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock)
        with pytest.raises(AuthError) as info:
            await lister.page()
    assert info.value.code == "SignatureDoesNotMatch"
    assert info.value.status == 403
    assert info.value.request_id
    assert info.value.request_id in str(info.value)
    assert emulator.state.stats.requests["list"] == 1  # fatal: not retried


async def test_unknown_secret_id(emulator: Emulator, clock: FakeClock) -> None:
    async with HttpClient(Credentials("AKIDnobody", "k")) as http:
        with pytest.raises(AuthError, match="InvalidAccessKeyId"):
            await make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock).page()


async def test_expired_signature(emulator: Emulator, clock: FakeClock) -> None:
    from scanner.emulator import DEFAULT_SECRET_KEY

    stale = HttpClient(
        Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY), wall=lambda: time.time() - 7200
    )
    async with stale as http:
        with pytest.raises(AuthError, match="Request has expired"):
            await make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock).page()


async def test_session_token_is_sent_and_checked(emulator: Emulator, clock: FakeClock) -> None:
    from scanner.emulator import DEFAULT_SECRET_KEY

    emulator.state.keys[DEFAULT_SECRET_ID] = KeyPair(DEFAULT_SECRET_KEY, token="tok+/=")
    _put(emulator.state)
    async with HttpClient(Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, "tok+/=")) as http:
        page = await make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock).page()
    assert len(page.objects) == 3
    async with HttpClient(Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)) as http:
        with pytest.raises(AuthError, match="InvalidToken"):
            await make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock).page()


async def test_expired_session_token(emulator: Emulator, clock: FakeClock) -> None:
    from scanner.emulator import DEFAULT_SECRET_KEY

    emulator.state.keys[DEFAULT_SECRET_ID] = KeyPair(
        DEFAULT_SECRET_KEY, token="t", token_expires=time.time() - 1
    )
    async with HttpClient(Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, "t")) as http:
        with pytest.raises(AuthError) as info:
            await make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock).page()
    assert info.value.code == "ExpiredToken"


async def test_unknown_bucket(emulator: Emulator, http: HttpClient, clock: FakeClock) -> None:
    cos = emulator.cos().__class__(bucket="nosuch-1250000000", endpoint=emulator.url)
    with pytest.raises(ConfigError, match="bucket nosuch-1250000000 not found in region") as info:
        await make_lister(http, cos, retry=FAST_RETRY, clock=clock).page()
    cause = info.value.__cause__  # what COS said: nothing to retry, nothing to run again for
    assert isinstance(cause, ServiceError)
    assert (cause.status, cause.code) == (404, "NoSuchBucket")
    assert not cause.retryable


async def test_wrong_region_is_no_such_bucket(
    emulator: Emulator, http: HttpClient, clock: FakeClock
) -> None:
    cos = emulator.cos(region="ap-beijing")
    with pytest.raises(ConfigError, match="not found in region ap-beijing: check") as info:
        await make_lister(http, cos, retry=FAST_RETRY, clock=clock).page()
    assert "NoSuchBucket" in str(info.value.__cause__)


async def test_throttled_then_succeeds(
    emulator: Emulator, lister: Lister, clock: FakeClock
) -> None:
    _put(emulator.state)
    emulator.state.faults.fail_next = [503, 503]
    emulator.state.faults.retry_after = 2.0
    page = await lister.page()
    assert len(page.objects) == 3
    assert emulator.state.stats.statuses["list 503"] == 2
    assert clock.sleeps == [2.0, 2.0]  # Retry-After honoured


async def test_throttled_error_class(
    emulator: Emulator, http: HttpClient, clock: FakeClock
) -> None:
    emulator.state.faults.fail_next = [503]
    emulator.state.faults.retry_after = None
    with pytest.raises(ThrottledError) as info:
        await make_lister(http, emulator.cos(), retry=NO_WAITING, clock=clock).page()
    assert info.value.code == "SlowDown"
    assert info.value.retryable


async def test_429_is_throttling(emulator: Emulator, http: HttpClient, clock: FakeClock) -> None:
    emulator.state.faults.fail_next = [429]
    with pytest.raises(ThrottledError):
        await make_lister(http, emulator.cos(), retry=NO_WAITING, clock=clock).page()


async def test_5xx_then_succeeds(emulator: Emulator, lister: Lister) -> None:
    _put(emulator.state)
    emulator.state.faults.fail_next = [500, 502]
    page = await lister.page()
    assert len(page.objects) == 3
    assert emulator.state.stats.requests["list"] == 3


async def test_5xx_exhausts_attempts(emulator: Emulator, lister: Lister) -> None:
    emulator.state.faults.fail_next = [500, 500, 500, 500]
    with pytest.raises(ServiceError) as info:
        await lister.page()
    assert info.value.status == 500
    assert info.value.retryable
    assert emulator.state.stats.requests["list"] == FAST_RETRY.attempts


async def test_connection_reset_then_succeeds(emulator: Emulator, lister: Lister) -> None:
    _put(emulator.state)
    emulator.state.faults.reset_rate = 1.0
    with pytest.raises(TransportError):
        await lister.page()
    emulator.state.faults.reset_rate = 0.0
    assert len((await lister.page()).objects) == 3


async def test_truncated_body_is_transport_error(emulator: Emulator, lister: Lister) -> None:
    _put(emulator.state)
    emulator.state.faults.truncate_rate = 1.0
    with pytest.raises(TransportError, match=r"incomplete|closed"):
        await lister.page()


async def test_malformed_listing_is_retried_like_a_5xx(emulator: Emulator, lister: Lister) -> None:
    # a listing GET is idempotent and unbilled: before, one malformed page ended the scan
    _put(emulator.state)
    emulator.state.faults.malformed_rate = 1.0
    with pytest.raises(ProtocolError, match="malformed XML") as info:
        await lister.page()
    assert info.value.retryable
    assert emulator.state.stats.requests["list"] == 3  # every attempt of the policy
    emulator.state.faults.malformed_rate = 0.0
    emulator.state.faults.fail_next = []
    assert (await lister.page()).objects


async def test_html_answer_is_protocol_error(emulator: Emulator, lister: Lister) -> None:
    emulator.state.faults.body_mode = "html"
    with pytest.raises(ProtocolError):
        await lister.page()


async def test_entity_bomb_is_refused(emulator: Emulator, lister: Lister) -> None:
    emulator.state.faults.body_mode = "bomb"
    with pytest.raises(ProtocolError, match="DTD"):
        await lister.page()


async def test_oversized_chunked_body_is_refused(
    emulator: Emulator, http: HttpClient, clock: FakeClock
) -> None:
    emulator.state.faults.body_mode = "huge"
    lister = make_lister(
        http, emulator.cos(max_response_bytes=1024 * 1024), retry=FAST_RETRY, clock=clock
    )
    with pytest.raises(ProtocolError, match="over the 1048576-byte limit"):
        await lister.page()


async def test_oversized_declared_body_is_refused(
    emulator: Emulator, http: HttpClient, clock: FakeClock
) -> None:
    _put(emulator.state, 50)
    lister = make_lister(http, emulator.cos(max_response_bytes=2048), retry=FAST_RETRY, clock=clock)
    with pytest.raises(ProtocolError, match="bytes is over the 2048-byte limit"):
        await lister.page()


async def test_refused_connection_is_transport_error(http: HttpClient, clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from scanner.config import CosSettings

    cos = CosSettings(bucket="album-1250000000", endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(TransportError, match=r"cannot connect to 127\.0\.0\.1"):
        await make_lister(http, cos, retry=FAST_RETRY, clock=clock).page()


async def test_timeout_is_transport_error(
    emulator: Emulator, http: HttpClient, clock: FakeClock
) -> None:
    emulator.state.faults.latency = 0.5
    lister = make_lister(http, emulator.cos(timeout=0.05), retry=NO_RETRY, clock=clock)
    with pytest.raises(TransportError, match="timed out"):
        await lister.page()


async def test_requests_name_the_bucket_in_host(emulator: Emulator) -> None:
    service = cos_service(emulator.cos())
    assert service.host == "album-1250000000.cos.ap-guangzhou.myqcloud.com"
    assert service.base_url == emulator.url


async def test_client_cannot_be_reopened() -> None:
    from tests.helpers import CREDS

    client = HttpClient(CREDS)
    async with client:
        pass
    with pytest.raises(RuntimeError):
        await client.__aenter__()


async def test_page_with_more_entries_than_asked_is_refused(
    emulator: Emulator, http: HttpClient, clock: FakeClock
) -> None:
    # before: a server ignoring max-keys sent 285,000 objects in one page and peak memory
    # went from ~50 MB to 192 MB; now the page is refused before it is parsed
    _put(emulator.state, 30)
    emulator.state.faults.body_mode = "ignore_max_keys"
    lister = make_lister(http, emulator.cos(page_size=10), retry=FAST_RETRY, clock=clock)
    with pytest.raises(ProtocolError, match="page has 30 entries, max-keys asked for 10") as info:
        await lister.page()
    assert not info.value.retryable
    assert emulator.state.stats.requests["list"] == 1


async def test_deeply_nested_answer_is_refused_at_parse(emulator: Emulator, lister: Lister) -> None:
    _put(emulator.state)
    emulator.state.faults.body_mode = "deep"
    with pytest.raises(ProtocolError, match="nested deeper than 32 levels"):
        await lister.page()
