"""The HTTP transport COS and CI share: one aiohttp session, signing, capped bodies, errors.

`HttpClient.send()` makes exactly one signed attempt and maps every failure into the error
tree (`scanner.errors`): transport failures and timeouts to TransportError, 429/503/SlowDown
to ThrottledError, 401/403 and credential codes to AuthError, other statuses to ServiceError
(5xx retryable). Retries are the callers' (`scanner.retry`), so each client decides what an
attempt includes (the audit client acquires its budget per attempt).

With an endpoint override, requests go to that URL while the `Host` header (and the
signature) still name `<bucket>.cos.<region>.myqcloud.com` or `<bucket>.ci.<region>...`, the
form the official SDK uses with IP/Port, so one emulator serves both services.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace, TracebackType
from urllib.parse import urlsplit

import aiohttp
import anyio
import anyio.abc
import yarl

from scanner import __version__
from scanner.config import AuditSettings, CosSettings, Credentials
from scanner.cos.credentials import Provider
from scanner.cos.signing import encode, presign_query, sign, signable_headers
from scanner.cos.xml import error_fields
from scanner.errors import (
    AuthError,
    ProtocolError,
    RemoteError,
    ServiceError,
    ThrottledError,
    TransportError,
)

USER_AGENT = f"cos-scanner/{__version__}"
SIGN_TTL = 900  # seconds a request signature stays valid
SIGN_SKEW = 60  # start the window this much earlier, for clock skew (as the SDK does)

AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessForbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "RequestTimeTooSkewed",
        "Request has expired",
        "ExpiredToken",
        "InvalidAuthorization",
        "MissingAuthorization",
        "SecretidNotExist",
        "SignatureExpired",
        "InvalidToken",
    }
)
THROTTLE_CODES = frozenset({"SlowDown", "1020", "KmsFreqControl", "TooManyRequests"})
RETRYABLE_CODES = frozenset({"RequestTimeout", "InternalError", "ServiceUnavailable"})


@dataclass(frozen=True, slots=True)
class Service:
    """Where one service of one bucket is reached: URL base, and the Host we sign."""

    name: str  # "cos" or "audit"
    base_url: str  # scheme://host[:port], no trailing slash
    host: str  # <bucket>.<cos|ci>.<region>.myqcloud.com
    token_header: str  # x-cos-security-token or x-ci-security-token


def _service(name: str, sub: str, cos: CosSettings, endpoint: str) -> Service:
    host = f"{cos.bucket}.{sub}.{cos.region}.myqcloud.com"
    base = endpoint.rstrip("/") if endpoint else f"https://{host}"
    return Service(name, base, host, f"x-{sub}-security-token")


def cos_service(cos: CosSettings) -> Service:
    return _service("cos", "cos", cos, cos.endpoint)


def ci_service(cos: CosSettings, audit: AuditSettings) -> Service:
    return _service("audit", "ci", cos, audit.endpoint or cos.endpoint)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str


class HttpClient:
    """One aiohttp session for COS and CI; a context manager, not reusable after close."""

    def __init__(
        self,
        credentials: Provider | Credentials,
        *,
        connections: int = 100,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = (
            credentials if isinstance(credentials, Provider) else Provider.fixed(credentials)
        )
        self._wall = wall
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._renewing: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> HttpClient:
        if self._closed or self._session is not None:
            raise RuntimeError("HttpClient cannot be reopened")
        connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            trace_configs=[_SENT_TRACE],
        )
        try:
            await self.credentials.open(self._session)
            if self.credentials.renewable:  # renewed in the background while the client is open
                self._renewing = anyio.create_task_group()
                await self._renewing.__aenter__()
                self._renewing.start_soon(self.credentials.keep_fresh)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        if self._renewing is not None:
            self._renewing.cancel_scope.cancel()
            await self._renewing.__aexit__(None, None, None)
            self._renewing = None
        if self._session is not None:
            with anyio.CancelScope(shield=True):
                await self._session.close()

    def keys(self) -> Credentials:
        """The keys to sign the next request with (one triple, the newest)."""
        return self.credentials.keys()

    async def renewed(self, used: Credentials, refusal: AuthError) -> bool:
        """True when a request signed with `used` and refused should be sent once more, with
        newer keys (see `Provider.renewed`)."""
        return await self.credentials.renewed(used, refusal)

    def authorization(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        keys: Credentials | None = None,
    ) -> str:
        keys = keys or self.keys()
        now = int(self._wall())
        return sign(
            method=method,
            path=path,
            params=params,
            headers=signable_headers(headers),
            secret_id=keys.secret_id,
            secret_key=keys.secret_key,
            start=now - SIGN_SKEW,
            end=now + SIGN_TTL,
        )

    def presign(self, service: Service, key: str, seconds: int) -> str:
        """A URL that GETs object `key` without credentials for `seconds` from now."""
        now = int(self._wall())
        keys = self.keys()
        overridden = not service.base_url.endswith(f"//{service.host}")
        query = presign_query(
            path="/" + key,
            host=None if overridden else service.host,
            secret_id=keys.secret_id,
            secret_key=keys.secret_key,
            start=now,
            end=now + seconds,
            token=keys.token,
        )
        return f"{service.base_url}{encode_path(key)}?{query}"

    async def send(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes = b"",
        content_type: str = "",
        timeout_s: float = 30.0,
        max_bytes: int = 16 * 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        sink: Callable[[bytes], object] | None = None,
    ) -> Reply:
        """One signed (or, with `signed=False`, anonymous) request; returns a 2xx reply or
        raises a RemoteError. `headers` are sent (and the x-cos-* ones signed) besides the
        ones the request needs. With `sink`, a 2xx body is handed to it chunk by chunk (a
        download to a file) instead of being kept."""
        if self._session is None or self._closed:
            raise RuntimeError("HttpClient is not open")
        params = dict(params or {})
        extra = headers or {}
        query = "&".join(f"{encode(k)}={encode(v)}" for k, v in params.items())
        url = yarl.URL(
            f"{service.base_url}{encode_path(path)}{'?' + query if query else ''}", encoded=True
        )
        keys = self.keys() if signed else None
        for last in (False, True):
            sent = {"Host": service.host, **extra}
            if body or method in ("POST", "PUT"):
                sent["Content-Length"] = str(len(body))
                if content_type:
                    sent["Content-Type"] = content_type
            if keys is not None:
                if keys.token:
                    sent[service.token_header] = keys.token
                sent["Authorization"] = self.authorization(method, path, params, sent, keys)
            sent["User-Agent"] = USER_AGENT
            sent["Accept-Encoding"] = "identity"
            reply = await self.exchange(
                service, method, url, sent, body, timeout_s, max_bytes, sink=sink
            )
            if reply.status < 300:
                return reply
            error = status_error(service.name, reply)
            # refused for its keys (a token that lapsed): once more with newer ones, if any
            if last or keys is None or not isinstance(error, AuthError):
                raise error
            if not await self.renewed(keys, error):
                raise error
            keys = self.keys()
        raise AssertionError("unreachable")

    async def exchange(
        self,
        service: Service,
        method: str,
        url: yarl.URL,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float,
        max_bytes: int,
        *,
        sink: Callable[[bytes], object] | None = None,
    ) -> Reply:
        """One request as given (already signed, or signed another way: IMS's TC3); the reply
        whatever its status. Transport failures raise TransportError, saying whether the
        request may have left (and been billed)."""
        if self._session is None or self._closed:
            raise RuntimeError("HttpClient is not open")
        wire: dict[str, bool] = {}  # "sent": the request's headers left (it may be billed)
        try:
            async with self._session.request(
                method,
                url,
                data=body or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
                trace_request_ctx=wire,
            ) as resp:
                return await _read(service, resp, 0 if method == "HEAD" else max_bytes, sink)
        except RemoteError:
            raise
        except TimeoutError as exc:
            raise TransportError(
                service.name, f"timed out after {timeout_s:g}s", maybe_sent="sent" in wire
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                service.name, _describe(exc, service), maybe_sent="sent" in wire
            ) from exc


async def _on_headers_sent(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
) -> None:
    if isinstance(ctx.trace_request_ctx, dict):
        ctx.trace_request_ctx["sent"] = True


#: Tells a request that never left (connect failed: safe to send again) from one whose answer
#: was lost (the service may have done, and billed, the work).
_SENT_TRACE = aiohttp.TraceConfig()
_SENT_TRACE.on_request_headers_sent.append(_on_headers_sent)
_SENT_TRACE.freeze()


def encode_path(path: str) -> str:
    """A decoded path as sent on the wire (the SDK's quote(key, '/-_.~'))."""
    return "/" + encode(path.lstrip("/")).replace("%2F", "/")


async def _read(
    service: Service,
    resp: aiohttp.ClientResponse,
    max_bytes: int,
    sink: Callable[[bytes], object] | None = None,
) -> Reply:
    request_id = resp.headers.get("x-cos-request-id") or resp.headers.get("x-ci-request-id") or ""
    if not max_bytes:  # HEAD: Content-Length describes the object, there is no body
        return Reply(resp.status, resp.headers, b"", request_id)
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise ProtocolError(
            service.name,
            f"answer of {resp.content_length} bytes is over the {max_bytes}-byte limit",
            request_id=request_id,
            status=resp.status,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise ProtocolError(
                service.name,
                f"answer is over the {max_bytes}-byte limit",
                request_id=request_id,
                status=resp.status,
            )
        if sink is not None and resp.status < 300:
            sink(chunk)
        else:
            chunks.append(chunk)
    return Reply(resp.status, resp.headers, b"".join(chunks), request_id)


def _describe(exc: aiohttp.ClientError, service: Service) -> str:
    where = urlsplit(service.base_url).netloc
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {where}: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"incomplete answer from {where}"
    return f"request to {where} failed: {type(exc).__name__}: {exc}"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def unreadable(
    service: str, what: str, reply: Reply, exc: Exception, *, retryable: bool = False
) -> ProtocolError:
    """The error for a 2xx answer whose body we cannot read (`retryable` for idempotent,
    unbilled requests, where another try costs nothing)."""
    error = ProtocolError(
        service, f"unreadable {what}: {exc}", request_id=reply.request_id, status=reply.status
    )
    error.retryable = retryable
    return error


def status_error(service: str, reply: Reply) -> RemoteError:
    """The RemoteError for a non-2xx reply, from its status and error XML."""
    fields = error_fields(reply.body)
    code = fields.get("Code", "")
    request_id = fields.get("RequestId") or reply.request_id
    message = fields.get("Message") or (code or f"HTTP {reply.status} without an error body")
    if reply.status in (429, 503) or code in THROTTLE_CODES:
        return ThrottledError(
            service,
            message,
            retry_after=_retry_after(reply.headers),
            request_id=request_id,
            status=reply.status,
            code=code,
        )
    if reply.status in (401, 403) or code in AUTH_CODES:
        return AuthError(service, message, request_id=request_id, status=reply.status, code=code)
    retryable = reply.status >= 500 or code in RETRYABLE_CODES
    return ServiceError(
        service, message, request_id=request_id, status=reply.status, code=code, retryable=retryable
    )
