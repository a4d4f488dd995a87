"""ImsClient: IMS ImageModeration (API 2020-12-29), one image per request, under its budget.

The same guarantees as the CI batch client (`scanner.audit.client`), for requests of one
image: each attempt takes one slot and one token of the IMS budget; throttling
(`RequestLimitExceeded`) shrinks the budget and is retried; a lost answer is resent at most
`[audit] resend_after_timeout` times and counted as possibly billed twice; an unreadable
answer fails its image with `unreadable-answer`. `AuthFailure.*` is fatal; per-image problems
(`InvalidParameter.*`, `ResourceUnavailable.ImageDownloadError`, ...) come back as data.

The image goes as `FileUrl`, a presigned COS GET URL made fresh for each attempt ([ims]
input = "url"), or as `FileContent` ([ims] input = "content": the object is downloaded once,
and one whose base64 text would pass IMS's 10 MB limit is not sent: it fails `too-large`).
A URL-list item goes as its own URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import anyio
import yarl

from scanner.audit.client import Resends
from scanner.audit.ims_codec import (
    ACTION,
    CONTENT_TYPE,
    MAX_CONTENT_BYTES,
    RETRYABLE_IMAGE_CODES,
    RETRYABLE_REQUEST_CODES,
    SERVICE,
    THROTTLE_CODES,
    VERSION,
    decode_verdict,
    encode_request,
    encoded_size,
    error_of,
    parse,
)
from scanner.audit.policy import AuditOptions
from scanner.clock import Clock
from scanner.config import AuditSettings, CosSettings, Credentials, ImsSettings
from scanner.cos.client import (
    USER_AGENT,
    HttpClient,
    Reply,
    Service,
    cos_service,
    status_error,
)
from scanner.cos.objects import ObjectClient
from scanner.cos.tc3 import authorization
from scanner.errors import (
    AuthError,
    OnRetry,
    ProtocolError,
    ServiceError,
    ThrottledError,
    TransportError,
)
from scanner.limiter import AuditBudget
from scanner.models import AuditItem, ImageVerdict
from scanner.retry import RetryPolicy, retrying, unless_set


def ims_service(ims: ImsSettings) -> Service:
    base = (
        ims.endpoint.rstrip("/")
        if ims.endpoint
        else f"https://ims.{ims.region}.tencentcloudapi.com"
    )
    return Service("ims", base, urlsplit(base).netloc, "X-TC-Token")


class ImsClient:
    """Audits images one request each through IMS ImageModeration."""

    batch_size = 1

    def __init__(
        self,
        http: HttpClient,
        cos: CosSettings,
        settings: AuditSettings,
        ims: ImsSettings,
        *,
        retry: RetryPolicy,
        clock: Clock,
        budget: AuditBudget,
        on_retry: OnRetry | None = None,
        options: AuditOptions,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._settings = settings
        self._ims = ims
        self._service = ims_service(ims)
        self._url = yarl.URL(self._service.base_url + "/", encoded=True)
        self._cos = cos_service(cos)
        self.options = options  # the plan's: built once, from the settings and [audit.freeze]
        self._retry = retry
        self._clock = clock
        self.budget = budget
        self._on_retry = on_retry
        self._wall = wall
        self._objects = ObjectClient(
            http, cos, retry=retry, clock=clock,
            budget=AuditBudget(ims.concurrency, max(ims.qps * 2, 10.0), clock),
            on_retry=on_retry,
        )  # fmt: skip
        self.requests = 0
        self.maybe_double = 0

    def headers(self, body: bytes, keys: Credentials) -> dict[str, str]:
        """The request's headers, TC3-signed now with `keys`."""
        now = int(self._wall())
        headers = {
            "Host": self._service.host,
            "Content-Type": CONTENT_TYPE,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(now),
            "X-TC-Region": self._ims.region,
        }
        if keys.token:
            headers["X-TC-Token"] = keys.token
        headers["Authorization"] = authorization(
            secret_id=keys.secret_id, secret_key=keys.secret_key, service=SERVICE,
            host=self._service.host, content_type=CONTENT_TYPE, body=body, timestamp=now,
        )  # fmt: skip
        headers["User-Agent"] = USER_AGENT
        return headers

    async def moderate(
        self, items: Sequence[AuditItem], stop: anyio.Event | None = None
    ) -> list[ImageVerdict]:
        """Verdicts (or per-image failures) for `items`, in their order, one request each."""
        return [await self._one(item, stop) for item in items]

    async def _content(self, item: AuditItem) -> bytes | ImageVerdict:
        limit = MAX_CONTENT_BYTES * 3 // 4  # raw bytes whose base64 fits in 10 MB
        try:
            data = await self._objects.get(item.key, limit)
        except ProtocolError:
            data = b"x" * (limit + 1)
        if data is None:
            return ImageVerdict(item.key, item.data_id, code="NoSuchKey", message="object is gone")
        if encoded_size(len(data)) > MAX_CONTENT_BYTES:
            return ImageVerdict(
                item.key, item.data_id, code="too-large",
                message="over IMS's 10 MB FileContent limit once base64-encoded ([ims] input)",
            )  # fmt: skip
        return data

    async def _one(self, item: AuditItem, stop: anyio.Event | None) -> ImageVerdict:
        content: bytes | None = None
        if self._ims.input == "content" and not item.url:
            got = await self._content(item)
            if isinstance(got, ImageVerdict):
                return got
            content = got
        resends = Resends(self._settings.resend_after_timeout, stop)

        def body() -> bytes:  # a FileUrl presigned with the keys of the moment
            url = item.url or (
                "" if content is not None
                else self._http.presign(self._cos, item.key, self._ims.url_expiry)
            )  # fmt: skip
            return encode_request(item, self.options, file_url=url, content=content)

        async def attempt() -> list[ImageVerdict]:
            async with await unless_set(stop, self.budget.slot) as sent_at:
                self.requests += 1
                outcome = await self._send(item, body, resends, sent_at)
            self.budget.rate.on_success()
            return [outcome]

        (verdict,) = await resends.run(
            [item],
            lambda: retrying(self._retry, self._clock, attempt, on_retry=self._on_retry, stop=stop),
        )
        self.maybe_double += verdict.maybe_double
        return verdict

    async def _send(
        self, item: AuditItem, body_of: Callable[[], bytes], resends: Resends, sent_at: float
    ) -> ImageVerdict:
        """One request; refused for its keys (a token that lapsed), once more with newer ones
        (and a FileUrl signed with them)."""
        keys = self._http.keys()
        for last in (False, True):
            body = body_of()
            try:
                reply = await self._http.exchange(
                    self._service, "POST", self._url, self.headers(body, keys), body,
                    self._ims.timeout, self._settings.max_response_bytes,
                )  # fmt: skip
            except TransportError as exc:
                resends.lost_answer(exc)
                raise
            try:
                return self._read(item, reply, sent_at)
            except AuthError as refusal:
                if last or not await self._http.renewed(keys, refusal):
                    raise
                keys = self._http.keys()
        raise AssertionError("unreachable")

    def _read(self, item: AuditItem, reply: Reply, sent_at: float) -> ImageVerdict:
        """The verdict an answer carries; raises for throttling (the budget told), credentials
        and the service's own trouble (retried)."""
        if reply.status >= 300:
            failure = status_error("ims", reply)
            if isinstance(failure, ThrottledError):
                self.budget.rate.on_throttled(sent_at, failure.retry_after)
            raise failure
        try:
            response = parse(reply.body)
        except ValueError as exc:
            return ImageVerdict(
                item.key, item.data_id, code="unreadable-answer",
                message=f"ims: unreadable answer: {exc}",
            )  # fmt: skip
        error = error_of(response)
        if error is None:
            return decode_verdict(response, item, reply.body.decode("utf-8", "replace"))
        if error.code in THROTTLE_CODES:
            self.budget.rate.on_throttled(sent_at, None)
            raise ThrottledError("ims", error.message, request_id=error.request_id, code=error.code)
        return _image_error(item, error.code, error.message, error.request_id)


def _image_error(item: AuditItem, code: str, message: str, request_id: str) -> ImageVerdict:
    """An `Error` answer: fatal for credentials, a retried request for the service's own
    trouble, otherwise this image's failure (retryable when the download failed)."""
    if code.startswith(("AuthFailure", "UnauthorizedOperation")):
        raise AuthError("ims", message or code, request_id=request_id, code=code)
    if code in RETRYABLE_REQUEST_CODES:
        raise ServiceError("ims", message or code, request_id=request_id, code=code, retryable=True)
    return ImageVerdict(
        item.key, item.data_id, code=code, message=message,
        retryable=code in RETRYABLE_IMAGE_CODES,
    )  # fmt: skip
