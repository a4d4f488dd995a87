"""Fault injection: decided per request from the state's seeded RNG, counted in stats.faults.

Before handling (nothing is billed): fail_next statuses, connection resets, 5xx errors and
throttling past the audit QPS cap. After handling: malformed, truncated, slow, HTML, entity-
bomb or oversized bodies, and audit answers that drop an image or name an unknown DataId.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from scanner.emulator.state import EmulatorState
from scanner.emulator.wire import error_xml, request_id

BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]>\n<ListBucketResult><Name>&lol9;</Name></ListBucketResult>"
)
HUGE_BYTES = 100 * 1024 * 1024


def roll(state: EmulatorState, rate: float) -> bool:
    return rate > 0 and state.rng.random() < rate


def _error(
    service: str, status: int, code: str, message: str, extra: dict[str, str] | None = None
) -> web.Response:
    rid = request_id()
    headers = {"x-ci-request-id" if service == "ci" else "x-cos-request-id": rid}
    headers.update(extra or {})
    return web.Response(
        status=status,
        text=error_xml(service, code, message, rid, "/"),
        content_type="application/xml",
        headers=headers,
    )


_STATUS_CODES = {
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
    403: "AccessDenied",
    404: "NoSuchBucket",
    400: "InvalidArgument",
}


def _throttled(state: EmulatorState, service: str) -> web.Response:
    f = state.faults
    state.stats.faults["throttled"] += 1
    extra = {"Retry-After": f"{f.retry_after:g}"} if f.retry_after is not None else None
    return _error(
        service, f.throttle_status, f.throttle_code, "Please reduce your request rate.", extra
    )


def over_cap(state: EmulatorState, endpoint: str = "audit") -> bool:
    """Whether a request to `endpoint` is over its cap of requests in the last second."""
    f = state.faults
    if endpoint == "object":
        cap, window = f.object_qps_cap, state.object_times
    elif endpoint == "list":
        cap, window = f.list_qps_cap, state.list_times
    elif endpoint == "jobs":
        cap, window = f.jobs_qps_cap, state.job_times
    else:
        cap, window = f.qps_cap, state.audit_times
    if not cap:
        return False
    now = time.monotonic()
    while window and now - window[0] >= 1.0:
        window.popleft()
    if len(window) >= cap:
        return True
    window.append(now)
    return False


async def before(
    state: EmulatorState, request: web.Request, endpoint: str
) -> web.StreamResponse | None:
    """An injected answer that replaces handling, or None to handle the request."""
    f = state.faults
    service = "ci" if endpoint in ("audit", "query", "badcase", "jobs") else "cos"
    if endpoint not in f.targets:
        return None
    if f.fail_next:
        status = f.fail_next.pop(0)
        state.stats.faults[f"fail_next {status}"] += 1
        if status in (429, 503) and status == f.throttle_status:
            return _throttled(state, service)
        return _error(
            service, status, _STATUS_CODES.get(status, "InternalError"), "injected failure"
        )
    if roll(state, f.reset_rate):
        state.stats.faults["reset"] += 1
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # the peer is gone; aiohttp drops the handler quietly
    await maybe_stall(state, request)
    if roll(state, f.error_rate):
        state.stats.faults["error"] += 1
        if state.rng.random() < 0.5:
            return _error(service, 500, "InternalError", "We encountered an internal error.")
        return _error(service, 503, "ServiceUnavailable", "Service is unavailable. Try again.")
    if endpoint in ("audit", "object", "list", "jobs") and over_cap(state, endpoint):
        return _throttled(state, service)
    return None


async def maybe_stall(state: EmulatorState, request: web.Request) -> None:
    """Hold the request past the client's timeout; if the client gave up, drop it unbilled."""
    if roll(state, state.faults.stall_rate):
        state.stats.faults["stall"] += 1
        await asyncio.sleep(state.faults.stall)
        if request.transport is None or request.transport.is_closing():
            raise asyncio.CancelledError


def mangle_jobs(state: EmulatorState, jobs: list[str]) -> list[str]:
    """body_mode drop_one / unknown_id: an audit answer that does not match its inputs."""
    mode = state.faults.body_mode
    if mode == "drop_one" and jobs:
        state.stats.faults["drop_one"] += 1
        return jobs[:-1]
    if mode == "unknown_id" and jobs:
        state.stats.faults["unknown_id"] += 1
        head, _, tail = jobs[0].partition("</DataId>")
        return [
            head[: head.index("<DataId>")] + "<DataId>no-such-data-id</DataId>" + tail,
            *jobs[1:],
        ]
    return jobs


async def _stream(
    request: web.Request, chunks: list[bytes], delay: float, length: int | None
) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/xml"})
    if length is not None:
        resp.content_length = length
    await resp.prepare(request)
    for i, chunk in enumerate(chunks):
        if i and delay:
            await asyncio.sleep(delay)
        await resp.write(chunk)
    return resp


async def _huge(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/xml"})
    await resp.prepare(request)  # chunked: no Content-Length, so the client must count
    block = b"<Response>" + b"x" * (1024 * 1024 - 10)
    try:
        for _ in range(HUGE_BYTES // len(block)):
            await resp.write(block)
    except (ConnectionResetError, ConnectionError):
        pass
    return resp


async def answer(
    state: EmulatorState, request: web.Request, endpoint: str, body: str, service: str
) -> web.StreamResponse:
    """The 200 answer for `body`, mangled as the faults say."""
    f = state.faults
    rid = request_id()
    headers = {
        "x-ci-request-id" if service == "ci" else "x-cos-request-id": rid,
        "Server": "tencent-cos",
    }
    if endpoint in f.targets:
        if f.body_mode == "html":
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1><p>nginx</body></html>",
                content_type="text/html",
            )
        if f.body_mode == "bomb":
            return web.Response(text=BOMB, content_type="application/xml")
        if f.body_mode == "huge":
            return await _huge(request)
        data = body.encode()
        if f.body_mode == "deep":  # 200,000 nested elements (1.4 MB) inside a valid answer
            cut = data.find(b"</JobsDetail>")
            cut = cut if cut >= 0 else data.rfind(b"</")
            nest = b"<X>" * 200_000 + b"</X>" * 200_000
            return web.Response(
                body=data[:cut] + nest + data[cut:], content_type="application/xml", headers=headers
            )
        if roll(state, f.malformed_rate):
            state.stats.faults["malformed"] += 1
            return web.Response(
                body=data[: len(data) // 2], content_type="application/xml", headers=headers
            )
        if f.truncate_next > 0 or roll(state, f.truncate_rate):
            f.truncate_next = max(0, f.truncate_next - 1)
            state.stats.faults["truncated"] += 1
            resp = await _stream(request, [data[: len(data) // 2]], 0, len(data))
            if request.transport is not None:
                request.transport.close()
            return resp
        if f.slow_body:
            state.stats.faults["slow_body"] += 1
            quarter = max(1, len(data) // 4)
            chunks = [data[i : i + quarter] for i in range(0, len(data), quarter)]
            return await _stream(request, chunks, f.slow_body / len(chunks), len(data))
    return web.Response(body=body.encode(), content_type="application/xml", headers=headers)


def write_kind(request: web.Request) -> str:
    """What an object write is: "PUT acl", "PUT copy", "PUT upload" or "DELETE"."""
    if request.method == "DELETE":
        return "DELETE"
    if "acl" in request.query:
        return "PUT acl"
    return "PUT copy" if "x-cos-copy-source" in request.headers else "PUT upload"


async def hold(state: EmulatorState, request: web.Request, bucket: str) -> None:
    """Fault injection `hold`: the first write of a held kind waits, unperformed, until the
    faults are set again (POST /_emulator/faults), then fails 503 (its client is usually
    killed by then)."""
    if request.method not in ("PUT", "DELETE") or not state.faults.hold:
        return
    kind = write_kind(request)
    if kind not in state.faults.hold:
        return
    state.faults.hold.remove(kind)
    state.stats.held.append(f"{kind} {bucket}{request.path}")
    state.stats.changes.changed()
    updates = state.fault_updates
    await state.fault_changes.until(lambda: state.fault_updates > updates)
    raise web.HTTPServiceUnavailable(text="held (fault injection)")
