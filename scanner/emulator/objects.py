"""COS object operations (reference 8, 14): HEAD/GET, GET/PUT `?acl`, PUT (upload and copy),
DELETE, each with `versionId` where the bucket keeps versions (`versions`); GET/PUT
`?versioning` on a bucket.

Keys are served from the emulator's bucket, or from an extra bucket (`--extra-bucket`, e.g. a
quarantine bucket) named by the Host header. An object's ACL is `default` (inherit the
bucket's, `public-read` unless `--private-bucket`), `private` or `public-read`; an anonymous
(unsigned) GET of an object whose effective ACL is private gets 403 AccessDenied. Synthetic
objects have no content: they serve `size` deterministic bytes (a 1x1 GIF, then bytes derived
from the ETag); folder objects serve their file. Every write (ACL, copy destination, delete)
is counted per `bucket/key` in `stats.writes`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import unquote
from xml.sax.saxutils import escape

from aiohttp import web

from scanner.cos.xml import XmlError, parse
from scanner.emulator.bucket import Bucket, StoredObject
from scanner.emulator.images import content_type, fmt_of, picture
from scanner.emulator.media import kind_of, media_verdict
from scanner.emulator.rules import DEFAULT_SCENES, verdict_for
from scanner.emulator.state import EmulatorState
from scanner.emulator.wire import Refusal, request_id

ALL_USERS = "http://cam.qcloud.com/groups/global/AllUsers"
OWNER = "qcs::cam::uin/100000000001:uin/100000000001"
ACLS = ("private", "public-read", "default")

# A 1x1 GIF: the first bytes of every synthetic object.
PIXEL = bytes.fromhex(
    "47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b"
)


def seed_of(obj: StoredObject) -> bytes:
    """What a synthetic object's bytes are drawn from (its ETag's hash): equal for copies."""
    return hashlib.sha256(obj.etag.encode()).digest()


def _label(key: str, obj: StoredObject) -> str | None:
    """The colour a picture of `key` is drawn in: what the rules decide (None: the service
    could not decode it, so neither can anyone: it stays undrawn bytes)."""
    verdict = verdict_for(key, obj, large_image_detect=True)
    return None if verdict.code and verdict.code != "-65011" else verdict.label


def content(obj: StoredObject, key: str = "") -> bytes:
    """What GET returns for `obj`: for a JPEG/PNG/GIF key, a real picture of exactly its size
    coloured by its verdict (`images`); otherwise a 1x1 GIF, then bytes drawn from its seed."""
    if obj.data is not None:
        return obj.data
    if obj.path is not None:
        return obj.path.read_bytes()
    seed = seed_of(obj)
    label = _label(key, obj) if key and obj.size else None
    if label is not None:
        drawn = picture(key, label, obj.size, seed)
        if drawn is not None:
            return drawn
    repeats = max(0, obj.size - len(PIXEL)) // len(seed) + 1  # bytes * n: C speed, MBs in µs
    return (PIXEL + seed * repeats)[: obj.size]


def thumbnail(key: str, obj: StoredObject) -> web.Response:
    """`GET /<key>?imageMogr2/thumbnail/<geometry>` (reference 9): a small picture of a
    synthetic image; a folder's file is returned as it is (the emulator does not resize)."""
    small: bytes | None = None
    if obj.path is not None:
        small = obj.path.read_bytes()
    elif obj.size and (label := _label(key, obj)) is not None:
        small = picture(key, label, 0, b"", thumb=True)
    if small is None:
        raise Refusal(400, "InvalidImageFormat", "The image cannot be processed.")
    return web.Response(
        body=small,
        headers={"Content-Type": content_type(key), "x-cos-request-id": request_id()},
    )


def _processed(key: str, obj: StoredObject, request: web.Request) -> web.Response | None:
    """CI processing on download: a thumbnail, a video's frame, a document's page."""
    if any(q.startswith("imageMogr2/") for q in request.query):
        return thumbnail(key, obj)
    if request.query.get("ci-process") in ("snapshot", "doc-preview"):
        return still(key, obj)
    return None


def still(key: str, obj: StoredObject) -> web.Response:
    """A video's frame (`?ci-process=snapshot&time=S`, the URLs of its job's answer) or a
    document's page (`?ci-process=doc-preview&page=N`): a picture in the colour of what the
    object's job finds (`media.media_verdict`)."""
    kind = kind_of(key)
    if kind is None or not obj.size:
        raise Refusal(400, "InvalidArgument", "not a video or a document")
    found = media_verdict(kind, key, obj, DEFAULT_SCENES)
    body = picture("still.jpg", found.hit.scene if found.hit else "Normal", 0, b"", thumb=True)
    return web.Response(
        body=body, headers={"Content-Type": "image/jpeg", "x-cos-request-id": request_id()}
    )


def effective_acl(state: EmulatorState, bucket: str, key: str) -> str:
    acl = state.acls.get(f"{bucket}/{key}", "default")
    return state.bucket_acl if acl == "default" else acl


def _headers(obj: StoredObject) -> dict[str, str]:
    headers = {
        "ETag": f'"{obj.etag}"',
        "Content-Length": str(obj.size),
        "Last-Modified": obj.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "Content-Type": "image/jpeg" if obj.path is None else "application/octet-stream",
        "x-cos-request-id": request_id(),
        "Server": "tencent-cos",
    }
    if obj.storage_class.upper() != "STANDARD":  # COS names only the other classes
        headers["x-cos-storage-class"] = obj.storage_class
    return headers


def _found(objects: Bucket, key: str) -> StoredObject:
    obj = objects.objects.get(key)
    if obj is None:
        raise Refusal(404, "NoSuchKey", "The specified key does not exist.")
    return obj


def _at(
    state: EmulatorState, name: str, objects: Bucket, key: str, wanted: str
) -> StoredObject | None:
    """The object at the key, or of version `wanted`; None when there is none."""
    if not wanted:
        return objects.objects.get(key)
    try:
        return state.versioning.find(name, key, objects, wanted)
    except Refusal:
        return None


def _missing(
    state: EmulatorState, name: str, objects: Bucket, key: str, wanted: str, method: str
) -> web.Response:
    """The 404 of a missing object: a HEAD has no body (reference 8), a GET says which."""
    if method == "HEAD":
        return web.Response(status=404, headers={"x-cos-request-id": request_id()})
    if wanted:
        state.versioning.find(name, key, objects, wanted)  # raises the 404 it is
    raise Refusal(404, "NoSuchKey", "The specified key does not exist.")


def get(
    state: EmulatorState, name: str, objects: Bucket, request: web.Request, signed: bool
) -> web.StreamResponse:
    """HEAD or GET Object (anonymous reads obey the ACL); `?acl` answers the ACL."""
    key = request.path[1:]
    if "acl" in request.query:
        if not signed:
            raise Refusal(403, "AccessDenied", "Access Denied.")
        _found(objects, key)
        return xml_answer(_acl_xml(state.acls.get(f"{name}/{key}", "default")))
    wanted = request.query.get("versionId", "")
    obj = _at(state, name, objects, key, wanted)
    if obj is None:
        return _missing(state, name, objects, key, wanted, request.method)
    if not signed and effective_acl(state, name, key) != "public-read":
        raise Refusal(403, "AccessDenied", "Access Denied.")
    if_match = request.headers.get("If-Match", "").strip('"')
    if if_match and if_match != obj.etag:
        raise Refusal(412, "PreconditionFailed", "At least one precondition failed.")
    headers = _headers(obj)
    version = wanted or state.versioning.current_id(name, key)
    if version is not None:
        headers["x-cos-version-id"] = version
    if request.method == "HEAD":
        return web.Response(headers=headers)
    processed = _processed(key, obj, request)
    if processed is not None:
        return processed
    del headers["Content-Length"]
    if obj.path is None:  # so that FileContent with these bytes is judged as this object
        state.served[seed_of(obj)] = key
        headers["Content-Type"] = content_type(key) if fmt_of(key) else headers["Content-Type"]
    return web.Response(body=content(obj, key), headers=headers)


async def put(
    state: EmulatorState, name: str, objects: Bucket, request: web.Request
) -> web.Response:
    """PUT Object acl, PUT Object - Copy, or PUT Object (an upload of the body)."""
    key = request.path[1:]
    _deny(state, key)
    if "acl" in request.query:
        _found(objects, key)
        acl = request.headers.get("x-cos-acl") or _acl_from_body(await request.read())
        if acl not in ACLS:
            raise Refusal(400, "InvalidArgument", f"x-cos-acl {acl!r} is not supported")
        _set_acl(state, f"{name}/{key}", acl)
        state.stats.writes[f"{name}/{key}"] += 1
        return web.Response(headers={"x-cos-request-id": request_id()})
    forbid = request.headers.get("x-cos-forbid-overwrite", "").lower() == "true"
    state.versioning.check_overwrite(name, key, objects, forbid)
    source = request.headers.get("x-cos-copy-source")
    now = datetime.now(UTC).replace(microsecond=0)
    if not source:  # PUT Object: an upload
        data = await request.read()
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        version = state.versioning.write(
            name, key, objects, StoredObject(digest, len(data), now, data=data)
        )
        _set_acl(state, f"{name}/{key}", request.headers.get("x-cos-acl", "default"))
        state.stats.writes[f"{name}/{key}"] += 1
        headers = {"ETag": f'"{digest}"', "x-cos-request-id": request_id()}
        if version is not None and version != "null":
            headers["x-cos-version-id"] = version
        return web.Response(headers=headers)
    src_name, src_bucket, src_key, src_version = _copy_source(state, source)
    src = (
        state.versioning.find(src_name, src_key, src_bucket, src_version)
        if src_version
        else _found(src_bucket, src_key)
    )
    if_match = request.headers.get("x-cos-copy-source-If-Match", "").strip('"')
    if if_match and if_match != src.etag:
        raise Refusal(412, "PreconditionFailed", "At least one precondition failed.")
    copied = StoredObject(src.etag, src.size, now, src.storage_class, src.path, data=src.data)
    copied.content = src.content
    version = state.versioning.write(name, key, objects, copied)
    _set_acl(state, f"{name}/{key}", request.headers.get("x-cos-acl", "default"))
    state.stats.writes[f"{name}/{key}"] += 1
    version_xml = f"<VersionId>{version}</VersionId>" if version else ""
    body = (
        f"<CopyObjectResult><ETag>&quot;{src.etag}&quot;</ETag>"
        f"<LastModified>{now.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</LastModified>"
        f"{version_xml}</CopyObjectResult>"
    )
    answer = xml_answer(body)
    if version is not None and version != "null":
        answer.headers["x-cos-version-id"] = version
    if src_version:
        answer.headers["x-cos-copy-source-version-id"] = src_version
    return answer


def delete(state: EmulatorState, name: str, objects: Bucket, request: web.Request) -> web.Response:
    """DELETE Object: 204, also for a key that does not exist."""
    key = request.path[1:]
    _deny(state, key)
    headers = state.versioning.delete(name, key, objects, request.query.get("versionId"))
    if key not in objects.objects:
        state.acls.pop(f"{name}/{key}", None)
    state.stats.writes[f"{name}/{key}"] += 1
    return web.Response(status=204, headers={"x-cos-request-id": request_id(), **headers})


def _deny(state: EmulatorState, key: str) -> None:
    """Fault injection: writes to these keys are not permitted (a CAM policy that denies)."""
    if key in state.faults.deny_keys:
        raise Refusal(403, "AccessDenied", "Access Denied.")


def _set_acl(state: EmulatorState, where: str, acl: str) -> None:
    if acl == "default":
        state.acls.pop(where, None)
    else:
        state.acls[where] = acl


def _copy_source(state: EmulatorState, source: str) -> tuple[str, Bucket, str, str]:
    """(bucket name, bucket, key, versionId or "") of an `x-cos-copy-source` value."""
    host, _, encoded = source.lstrip("/").partition("/")
    name = host.split(".", 1)[0]
    bucket = state.bucket_named(name)
    if bucket is None or not encoded:
        raise Refusal(404, "NoSuchBucket", "The specified copy source does not exist.")
    path, _, query = encoded.partition("?")
    version = query.partition("versionId=")[2].split("&", 1)[0] if "versionId=" in query else ""
    return name, bucket, unquote(path), unquote(version)


def bucket_versioning(state: EmulatorState, name: str, request: web.Request, body: bytes) -> str:
    """GET or PUT Bucket versioning (reference 14.3)."""
    if request.method == "PUT":
        try:
            status = (parse(body).findtext("Status") or "").strip()
        except XmlError as exc:
            raise Refusal(400, "MalformedXML", str(exc)) from None
        state.versioning.configure(name, status)
        return ""
    return state.versioning.configuration(name)


def _acl_from_body(body: bytes) -> str:
    """The canned ACL an `<AccessControlPolicy>` body amounts to."""
    if not body:
        raise Refusal(400, "InvalidArgument", "x-cos-acl or an AccessControlPolicy is needed")
    try:
        root = parse(body)
    except XmlError as exc:
        raise Refusal(400, "MalformedXML", str(exc)) from None
    for grant in root.iterfind("AccessControlList/Grant"):
        uri = grant.findtext("Grantee/URI") or ""
        if uri == ALL_USERS and (grant.findtext("Permission") or "") in ("READ", "FULL_CONTROL"):
            return "public-read"
    return "private"


def _acl_xml(acl: str) -> str:
    """GET Object acl: the owner's FULL_CONTROL, plus AllUsers READ for public-read. An object
    at `default` shows no grant of its own (it inherits the bucket's), like a private one."""
    grants = (
        '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:type="CanonicalUser"><ID>{OWNER}</ID><DisplayName>{OWNER}</DisplayName>'
        "</Grantee><Permission>FULL_CONTROL</Permission></Grant>"
    )
    if acl == "public-read":
        grants += (
            '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:type="Group"><URI>{escape(ALL_USERS)}</URI></Grantee>'
            "<Permission>READ</Permission></Grant>"
        )
    return (
        f"<AccessControlPolicy><Owner><ID>{OWNER}</ID><DisplayName>{OWNER}</DisplayName></Owner>"
        f"<AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
    )


def xml_answer(body: str) -> web.Response:
    return web.Response(
        text=body,
        content_type="application/xml",
        headers={"x-cos-request-id": request_id(), "Server": "tencent-cos"},
    )
