"""The emulator's IMS ImageModeration (API 2020-12-29): `POST /` with `X-TC-Action`.

TC3-HMAC-SHA256 is verified as the common SDK signs it (`scanner.audit.tc3`, checked against
`tencentcloud-sdk-python-common`): an unknown SecretId is `AuthFailure.SecretIdNotFound`, a
timestamp more than 300 s from the emulator's clock `AuthFailure.SignatureExpire`, anything
else that does not match `AuthFailure.SignatureFailure`. Errors are HTTP 200 with
`{"Response": {"Error": {"Code", "Message"}, "RequestId"}}` (reference 11).

`FileUrl` is fetched for real (`fetch`): the emulator's own presigned object URLs must verify
(an expired one is `ResourceUnavailable.ImageDownloadError`) and are judged by the same rules
as a CI Object input of that key; `FileContent` is decoded, and bytes the emulator served for
an object are judged as that object. Throttling past the audit QPS cap is
`RequestLimitExceeded`; latency, resets, stalls, errors, malformed and truncated answers are
injected as for CI (faults whose `targets` include "audit").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import uuid
from typing import Any

from aiohttp import web

from scanner.cos import tc3
from scanner.emulator import faults
from scanner.emulator.fetch import content_verdict, judge_url, own_hosts, served_key
from scanner.emulator.rules import DEFAULT_SCENES, Verdict, verdict_for
from scanner.emulator.state import EmulatorState
from scanner.emulator.wire import Refusal

ACTION, VERSION = "ImageModeration", "2020-12-29"
MAX_CONTENT = 10 * 1024 * 1024
SKEW = 300
_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<svc>[a-z]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[a-z;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)
_DATA_ID = re.compile(r"[A-Za-z0-9_@#-]{1,64}")
_SUGGESTION = {0: "Pass", 1: "Block", 2: "Review"}
#: Emulator failure codes (rules) as IMS error codes.
CODES = {
    "-61011": ("ResourceUnavailable.ImageDownloadError", "image not found"),
    "-65010": ("ResourceUnavailable.ImageDownloadError", "image download failed"),
    "-65013": ("InvalidParameterValue.InvalidImageContent", "not a supported image format"),
    "-65007": ("ResourceUnavailable.InvalidImageContent", "image decode failed"),
    "-65011": ("InvalidParameterValue.InvalidFileContentSize", "image too large"),
}


def is_ims(request: web.Request) -> bool:
    return request.method == "POST" and request.path == "/" and "X-TC-Action" in request.headers


def _json(body: dict[str, Any], rid: str) -> web.Response:
    # exactly "application/json", as the service sends it: the SDK reads Error only then
    data = json.dumps({"Response": {**body, "RequestId": rid}}, ensure_ascii=False).encode()
    return web.Response(body=data, headers={"Content-Type": "application/json"})


def check_tc3(
    state: EmulatorState, request: web.Request, body: bytes, now: float, service: str = "ims"
) -> None:
    """Raise the API 3.0 refusal of a request not TC3-signed for `service` by a known key
    (and, for a temporary key, with its token, not expired)."""
    match = _AUTH.match(request.headers.get("Authorization", ""))
    if match is None or match["signed"] != tc3.SIGNED_HEADERS or match["svc"] != service:
        raise Refusal(200, "AuthFailure.InvalidAuthorization", "Authorization is invalid.")
    pair = state.keys.get(match["id"])
    if pair is None:
        raise Refusal(200, "AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    stamp = request.headers.get("X-TC-Timestamp", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > SKEW:
        raise Refusal(200, "AuthFailure.SignatureExpire", "The signature has expired.")
    if pair.token is not None and request.headers.get("X-TC-Token") != pair.token:
        raise Refusal(200, "AuthFailure.TokenFailure", "The token is invalid.")
    if pair.token_expires is not None and now > pair.token_expires:
        state.stats.expired_tokens += 1
        raise Refusal(200, "AuthFailure.TokenFailure", "The token has expired.")
    if match["date"] != tc3.utc_date(int(stamp)):
        raise Refusal(200, "AuthFailure.SignatureFailure", "The credential date is wrong.")
    to_sign = tc3.string_to_sign(
        method="POST", uri="/", query="", content_type=request.headers.get("Content-Type", ""),
        host=request.headers.get("Host", ""), body=body, service=service, timestamp=int(stamp),
    )  # fmt: skip
    if tc3.signature(pair.secret_key, service, int(stamp), to_sign) != match["sig"]:
        raise Refusal(200, "AuthFailure.SignatureFailure", "The signature does not match.")


async def handle(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    """One ImageModeration call (faults, authentication, the answer)."""
    rid = str(uuid.uuid4())
    state.stats.requests["ims"] += 1
    state.stats.changes.changed()
    body = await request.read()
    try:
        if state.faults.latency:
            await asyncio.sleep(state.faults.latency)
        check_tc3(state, request, body, state.now())
        if request.headers.get("X-TC-Action") != ACTION:
            raise Refusal(200, "InvalidAction", "The action is not supported.")
        if request.headers.get("X-TC-Version") != VERSION:
            raise Refusal(200, "InvalidParameterValue", "The version is not supported.")
        await _faults(state, request)
        answer = await _moderate(state, request, body)
    except Refusal as exc:
        state.stats.statuses[f"ims {exc.code}"] += 1
        return _json({"Error": {"Code": exc.code, "Message": exc.message}}, rid)
    state.stats.statuses["ims 200"] += 1
    return await _mangled(state, request, _json(answer, rid))


async def _faults(state: EmulatorState, request: web.Request) -> None:
    f = state.faults
    if "audit" not in f.targets:
        return
    if faults.roll(state, f.reset_rate):
        state.stats.faults["reset"] += 1
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    await faults.maybe_stall(state, request)
    if faults.roll(state, f.error_rate):
        state.stats.faults["error"] += 1
        raise Refusal(200, "InternalError", "An internal error occurred.")
    if faults.over_cap(state, "audit"):
        state.stats.faults["throttled"] += 1
        raise Refusal(200, "RequestLimitExceeded", "The request rate exceeds the limit.")


async def _mangled(
    state: EmulatorState, request: web.Request, resp: web.Response
) -> web.StreamResponse:
    f = state.faults
    data = resp.body if isinstance(resp.body, bytes) else b""
    if "audit" in f.targets and faults.roll(state, f.malformed_rate):
        state.stats.faults["malformed"] += 1
        return web.Response(
            body=data[: len(data) // 2], headers={"Content-Type": "application/json"}
        )
    if "audit" in f.targets and faults.roll(state, f.truncate_rate):
        state.stats.faults["truncated"] += 1
        out = web.StreamResponse(headers={"Content-Type": "application/json"})
        out.content_length = len(data)
        await out.prepare(request)
        await out.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.close()
        return out
    return resp


async def _moderate(state: EmulatorState, request: web.Request, body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refusal(200, "InvalidParameter", "The request body is not JSON.") from None
    if not isinstance(params, dict):
        raise Refusal(200, "InvalidParameter", "The request body is not an object.")
    data_id = str(params.get("DataId") or "")
    if data_id and not _DATA_ID.fullmatch(data_id):
        raise Refusal(200, "InvalidParameterValue.InvalidDataId", "DataId is invalid.")
    user = params.get("User")
    if isinstance(user, dict) and user.get("UserId"):
        state.stats.users[str(user["UserId"])] += 1
    judged, verdict = await _judge(state, request, params)
    code = verdict.code
    if not code and faults.roll(state, state.faults.image_failure_rate):
        state.stats.faults["image_failure"] += 1
        code = "-65010"
    if code:
        state.stats.image_failures[code] += 1
        ims_code, message = CODES.get(code, ("InvalidParameter", verdict.message))
        raise Refusal(200, ims_code, message)
    state.stats.audits[judged] += 1
    state.stats.changes.changed()
    obj = state.bucket.objects.get(judged)
    if obj is not None:
        state.stats.contents[f"{obj.etag}/{obj.size}"] += 1
    state.stats.billed_units += len(DEFAULT_SCENES)
    return _answer(verdict, data_id, str(params.get("BizType") or ""))


async def _judge(
    state: EmulatorState, request: web.Request, params: dict[str, Any]
) -> tuple[str, Verdict]:
    scenes = DEFAULT_SCENES  # IMS has no DetectType: the BizType policy's scenes
    if params.get("FileContent"):
        raw = str(params["FileContent"])
        if len(raw) > MAX_CONTENT:
            raise Refusal(200, "InvalidParameterValue.InvalidFileContentSize", "over 10 MB")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise Refusal(200, "InvalidParameterValue.InvalidContent", "not base64") from None
        key = served_key(state, data)
        state.stats.sent[key or hashlib.sha256(data).hexdigest()] += 1
        if key is not None and key in state.bucket.objects:
            obj = state.bucket.objects[key]
            return key, verdict_for(key, obj, scenes=scenes, large_image_detect=True)
        return hashlib.sha256(data).hexdigest(), content_verdict(data, scenes, True)
    url = str(params.get("FileUrl") or "")
    if not url:
        raise Refusal(200, "InvalidParameter", "FileContent or FileUrl is required.")
    judged, verdict = await judge_url(state, url, own_hosts(request), scenes, True)
    state.stats.sent[judged] += 1
    return judged, verdict


def _answer(verdict: Verdict, data_id: str, biz_type: str) -> dict[str, Any]:
    suggestion = _SUGGESTION[verdict.result]
    labels = [
        {"Scene": h.scene, "Suggestion": _SUGGESTION[h.result], "Label": h.scene,
         "SubLabel": h.sub_label, "Score": h.score, "Details": []}
        for h in verdict.hits
    ]  # fmt: skip
    ocr = [
        {"Scene": "OCR", "Suggestion": _SUGGESTION[h.result], "Label": h.scene,
         "SubLabel": h.sub_label, "Score": h.score, "Text": h.ocr_text,
         "Details": [{"Text": h.ocr_text, "Label": h.scene, "Keywords": list(h.keywords),
                      "Score": h.score, "SubLabel": h.sub_label}]}
        for h in verdict.hits if h.ocr_text
    ]  # fmt: skip
    return {
        "Suggestion": suggestion,
        "Label": verdict.label,
        "SubLabel": verdict.sub_label,
        "Score": verdict.score,
        "LabelResults": labels,
        "ObjectResults": [],
        "OcrResults": ocr,
        "LibResults": [],
        "DataId": data_id,
        "BizType": biz_type,
        "Extra": "",
        "FileMD5": "",
        "RecognitionResults": [],
    }
