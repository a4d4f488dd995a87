"""The emulator's aiohttp.web app: routing, signatures, COS ListObjects, fault injection; CI
batch image auditing lives in `audit`, object operations in `objects`, IMS in `ims`.

Routes (the bucket comes from the Host header `<bucket>.cos|ci.<region>.myqcloud.com`; any
other Host, e.g. an IP, means the emulator's one bucket):
- `GET /` ListObjects v1; `POST /image/auditing` batch audit; `GET /image/auditing/<JobId>`
  query an async job;
- `GET /_emulator/stats[?detail=1]`, `GET|POST /_emulator/faults` (JSON),
  `POST /_emulator/objects` (JSON: put/delete/touch/churn), `POST /_emulator/reset`:
  control endpoints under a path no real API uses, unauthenticated, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import bisect
import re
from typing import Any

from aiohttp import web

from scanner.emulator import audit, control, faults, ims, jobs, objects, single, sts
from scanner.emulator.auth import check_request, strip_port
from scanner.emulator.bucket import Bucket
from scanner.emulator.fetch import FETCH_HEADER, own_hosts
from scanner.emulator.fetch import close as fetch_close
from scanner.emulator.state import EmulatorState
from scanner.emulator.wire import (
    Refusal,
    error_xml,
    list_xml,
    request_id,
    response_xml,
)

STATE = web.AppKey("state", EmulatorState)
_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9-]+)\.(?P<svc>cos|ci)\.(?P<region>[a-z0-9-]+)\.(?:myqcloud\.com|tencentcos\.cn)$"
)
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def _endpoint(request: web.Request) -> tuple[str, str]:
    """(endpoint, service) for a request: ("list"|"bucket"|"audit"|"query"|"badcase"|"object",
    "cos"|"ci")."""
    path = request.path
    if path == "/image/auditing":
        return "audit", "ci"
    if path.startswith("/image/auditing/"):
        return "query", "ci"
    if path == "/report/badcase":
        return "badcase", "ci"
    if jobs.is_job(path):
        return "jobs", "ci"
    if path == "/" and "versioning" in request.query:
        return "bucket", "cos"
    if path == "/" and not single.is_single(request):
        return "list", "cos"
    return "object", "cos"  # an object, or the single-image API (by detect-url at "/")


def error_response(
    service: str, status: int, code: str, message: str, resource: str
) -> web.Response:
    rid = request_id()
    header = "x-ci-request-id" if service == "ci" else "x-cos-request-id"
    return web.Response(
        status=status,
        text=error_xml(service, code, message, rid, resource),
        content_type="application/xml",
        headers={header: rid, "Server": "tencent-cos"},
    )


def _check_bucket(state: EmulatorState, request: web.Request) -> tuple[str, Bucket]:
    """The bucket the request names (its Host), or the emulator's bucket (an IP Host)."""
    host = strip_port(request.headers.get("Host", ""))
    match = _HOST.match(host)
    if match is None:
        return state.bucket_name, state.bucket  # IP or Domain mode: the emulator's bucket
    bucket = state.bucket_named(match["bucket"])
    if bucket is None or match["region"] != state.region:
        raise Refusal(404, "NoSuchBucket", "The specified bucket does not exist.")
    if (
        match["bucket"] != state.bucket_name
        and request.path == "/"
        and "versioning" not in request.query
    ):
        raise Refusal(501, "NotImplemented", "The emulator lists only its own bucket.")
    return match["bucket"], bucket


async def dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if sts.is_metadata(request):  # the CVM metadata service: an instance role's keys
        return sts.metadata(state, request)
    if sts.is_sts(request):  # STS (API 3.0): temporary keys for a role
        return await sts.handle(state, request)
    if ims.is_ims(request):  # Tencent Cloud API 3.0 (IMS): its own signature and answers
        return await ims.handle(state, request)
    endpoint, service = _endpoint(request)
    state.stats.requests[endpoint] += 1
    state.stats.changes.changed()
    if endpoint != "audit":
        return await _dispatch(state, request, endpoint, service)
    stats = state.stats
    stats.audits_in_flight += 1
    stats.max_audits_in_flight = max(stats.max_audits_in_flight, stats.audits_in_flight)
    try:
        return await _dispatch(state, request, endpoint, service)
    finally:
        stats.audits_in_flight -= 1


async def _dispatch(
    state: EmulatorState, request: web.Request, endpoint: str, service: str
) -> web.StreamResponse:
    resource = f"{request.headers.get('Host', '')}{request.path}"
    try:
        if state.faults.latency and FETCH_HEADER not in request.headers:
            await asyncio.sleep(state.faults.latency)
        denial = check_request(
            state,
            service=service,
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            now=state.now(),
        )
        anonymous_read = (
            endpoint == "object"
            and denial is not None
            and denial[1] in ("AccessDenied", "MissingAuthorization")
            and "q-signature" not in request.query
            and "Authorization" not in request.headers
            and request.method in ("GET", "HEAD")
            and "acl" not in request.query
        )
        if denial is not None and not anonymous_read:
            raise Refusal(*denial)
        name, bucket = _check_bucket(state, request)
        if name in state.faults.deny_buckets:  # a policy that grants nothing on this bucket
            raise Refusal(403, "AccessDenied", "Access Denied.")
        early = await faults.before(state, request, endpoint)
        if early is not None:
            state.stats.statuses[f"{endpoint} {early.status}"] += 1
            return early
        if endpoint == "object" and single.is_single(request) and request.method == "GET":
            if anonymous_read:
                raise Refusal(403, "AccessDenied", "Access Denied.")
            recognized = await single.recognize(state, bucket, request)
            state.stats.requests["single"] += 1
            return recognized
        if endpoint == "bucket":
            body = objects.bucket_versioning(state, name, request, await request.read())
            state.stats.statuses[f"{endpoint} 200"] += 1
            return objects.xml_answer(body)
        if endpoint == "object":
            await faults.hold(state, request, name)
            answer = await _object(state, name, bucket, request, signed=not anonymous_read)
            state.stats.statuses[f"{endpoint} {answer.status}"] += 1
            return answer
        body = await _handle(state, request, endpoint)
    except Refusal as exc:
        state.stats.statuses[f"{endpoint} {exc.status}"] += 1
        return error_response(service, exc.status, exc.code, exc.message, resource)
    state.stats.statuses[f"{endpoint} 200"] += 1
    return await faults.answer(state, request, endpoint, body, service)


async def _handle(state: EmulatorState, request: web.Request, endpoint: str) -> str:
    if endpoint == "list":
        return list_objects(state, request.query)
    if endpoint == "audit":
        if request.method != "POST":
            raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed.")
        return await audit.audit(state, await request.read(), own_hosts(request))
    if endpoint == "jobs":
        return await jobs.handle(state, request)
    if endpoint == "badcase":
        if request.method != "POST":
            raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed.")
        return audit.badcase(state, await request.read())
    if endpoint == "query":
        job = state.jobs.get(request.path.rsplit("/", 1)[-1])
        if job is None:
            raise Refusal(400, "InvalidArgument", "job does not exist")
        return response_xml([job.xml], request_id())
    raise Refusal(501, "NotImplemented", "The emulator serves ListObjects and image auditing.")


async def _object(
    state: EmulatorState, name: str, bucket: Bucket, request: web.Request, *, signed: bool
) -> web.StreamResponse:
    """The object operations of `scanner.emulator.objects`, by method."""
    if request.method in ("GET", "HEAD"):
        answer = objects.get(state, name, bucket, request, signed)
        if request.method == "GET" and name != state.bucket_name and answer.status == 200:
            state.stats.reads[f"{name}{request.path}"] += 1
        return answer
    if request.method == "PUT":
        return await objects.put(state, name, bucket, request)
    if request.method == "DELETE":
        return objects.delete(state, name, bucket, request)
    raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed.")


def _int_param(query: Any, name: str, default: int) -> int:
    raw = query.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit():
        raise Refusal(400, "InvalidArgument", f"{name} must be a non-negative integer")
    return int(raw)


def list_objects(state: EmulatorState, query: Any) -> str:
    """ListObjects v1 over the bucket (reference 1.1-1.3)."""
    prefix = query.get("prefix", "")
    marker = query.get("marker", "")
    delimiter = query.get("delimiter", "")
    encoding = query.get("encoding-type", "")
    if encoding and encoding != "url":
        raise Refusal(400, "InvalidArgument", "encoding-type must be url")
    if len(delimiter) > 1:
        raise Refusal(400, "InvalidDelimiter", "delimiter must be one character")
    max_keys = min(1000, _int_param(query, "max-keys", 1000))
    if state.faults.body_mode == "ignore_max_keys" and "list" in state.faults.targets:
        max_keys = len(state.bucket.keys()) + 1  # a server that sends everything at once
    if delimiter:  # a folder view (a split's probe), not a page of a walk through the keys
        state.stats.folder_views[prefix] += 1
    else:
        state.stats.list_markers[f"{prefix}:{marker}" if prefix else marker] += 1
    contents, prefixes, next_marker = _walk(state.bucket, prefix, marker, delimiter, max_keys)
    return list_xml(
        bucket=state.bucket_name,
        prefix=prefix,
        marker=marker,
        max_keys=max_keys,
        delimiter=delimiter,
        encoding=encoding,
        contents=contents,
        prefixes=prefixes,
        next_marker=next_marker,
    )


def _walk(
    bucket: Bucket, prefix: str, marker: str, delimiter: str, max_keys: int
) -> tuple[list[Any], list[str], str | None]:
    """A page's (key, object) contents and common prefixes, and its next marker (None: the
    listing ends here). The keys under a common prefix are jumped over, not walked: a folder
    view of a bucket of 10^6 keys costs as much as it would from COS's index."""
    keys, objects = bucket.keys(), bucket.objects
    contents: list[Any] = []
    prefixes: list[str] = []
    last = None
    i = bucket.after(marker, prefix)
    while i < len(keys) and keys[i].startswith(prefix):
        key = keys[i]
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        item = key[: cut + 1] if cut >= 0 else key
        i += 1
        if cut >= 0 and ord(item[-1]) < 0x10FFFF:  # past every key that rolls up into it
            i = bisect.bisect_left(keys, item[:-1] + chr(ord(item[-1]) + 1), i)
        if item == last or item <= marker:
            continue  # same common prefix, or inside the prefix the marker names
        if len(contents) + len(prefixes) >= max_keys:
            return contents, prefixes, last
        if cut >= 0:
            prefixes.append(item)
        else:
            contents.append((key, objects[key]))
        last = item
    return contents, prefixes, None


def build_app(state: EmulatorState) -> web.Application:
    """The emulator as an aiohttp application; `app[STATE]` is `state`."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[STATE] = state
    control.add_routes(app, STATE)

    async def close_fetcher(app: web.Application) -> None:
        await fetch_close(app[STATE])
        if app[STATE].inventory_dir is not None:  # the Inventory files `generate` wrote
            app[STATE].inventory_dir.cleanup()
            app[STATE].inventory_dir = None

    app.on_cleanup.append(close_fetcher)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
