"""IMS ImageModeration (API 2020-12-29) bodies <-> models. Pure: no I/O.

One image per request (reference 11). `Suggestion` Block / Review / Pass maps to Result
1 / 2 / 0; `Label`, `SubLabel` and `Score` are the image's; every per-scene list
(`LabelResults`, `OcrResults`, `LibResults`, `ObjectResults`) becomes a scene of the verdict,
and the whole answer is kept as received (JSON) for reports.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from scanner.audit.policy import AuditOptions, is_gif
from scanner.models import AuditItem, ImageVerdict, LibResult, OcrResult, Result, SceneInfo

ACTION = "ImageModeration"
VERSION = "2020-12-29"
SERVICE = "ims"
CONTENT_TYPE = "application/json"
MAX_CONTENT_BYTES = 10 * 1024 * 1024  # FileContent, base64-encoded (reference 11)
MAX_URL_IMAGE_BYTES = 30 * 1024 * 1024  # an image behind FileUrl
MAX_USER_BYTES = 128

SUGGESTIONS = {"Block": Result.SENSITIVE, "Review": Result.SUSPICIOUS, "Pass": Result.NORMAL}
_DATA_ID = re.compile(r"[A-Za-z0-9_@#-]{1,64}")

#: Error codes that are this image's problem, not the request's: a per-image failure.
RETRYABLE_IMAGE_CODES = frozenset({"ResourceUnavailable.ImageDownloadError"})
#: Error codes worth the same request again (not billed: the service did not judge).
RETRYABLE_REQUEST_CODES = frozenset(
    {
        "InternalError",
        "InternalError.InternalError",
        "ResourceUnavailable.ModelCallFailed",
        "ResourceUnavailable.InQueueError",
        "ResourceInsufficient",
    }
)
THROTTLE_CODES = frozenset({"RequestLimitExceeded", "LimitExceeded"})


def valid_data_id(value: str) -> bool:
    """IMS's DataId rule: at most 64 characters of letters, digits and _ @ # -."""
    return _DATA_ID.fullmatch(value) is not None


def encoded_size(raw_bytes: int) -> int:
    """Bytes of the base64 text of `raw_bytes` bytes."""
    return 4 * ((raw_bytes + 2) // 3)


def encode_request(
    item: AuditItem,
    options: AuditOptions,
    *,
    file_url: str = "",
    content: bytes | None = None,
) -> bytes:
    """The JSON body of one ImageModeration call: by `file_url`, or by `content` (base64)."""
    if not valid_data_id(item.data_id):
        raise ValueError(f"DataId {item.data_id!r} breaks IMS's rule (<= 64 of A-Za-z0-9_@#-)")
    body: dict[str, Any] = {"DataId": item.data_id}
    if options.biz_type:
        body["BizType"] = options.biz_type
    if content is not None:
        body["FileContent"] = base64.b64encode(content).decode()
    else:
        body["FileUrl"] = file_url
    if is_gif(item.url or item.key):
        if options.interval:
            body["Interval"] = options.interval
        if options.max_frames:
            body["MaxFrames"] = options.max_frames
    if item.user and len(item.user.encode()) <= MAX_USER_BYTES:
        body["User"] = {"UserId": item.user}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class ImsError:
    """An answer carrying `Response.Error`."""

    code: str
    message: str
    request_id: str


def parse(body: bytes) -> dict[str, Any]:
    """The `Response` object of an answer; ValueError when the body is not one."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    response = data.get("Response") if isinstance(data, dict) else None
    if not isinstance(response, dict):
        raise ValueError("no Response object")
    return response


def error_of(response: dict[str, Any]) -> ImsError | None:
    error = response.get("Error")
    if not isinstance(error, dict):
        return None
    return ImsError(
        str(error.get("Code") or "UnknownError"),
        str(error.get("Message") or ""),
        str(response.get("RequestId") or ""),
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _entries(response: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = response.get(name)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _scene(entry: dict[str, Any], kind: str) -> tuple[str, SceneInfo]:
    hit = 0 if entry.get("Suggestion") in (None, "Pass") else 1
    ocr: tuple[OcrResult, ...] = ()
    libs: tuple[LibResult, ...] = ()
    if kind == "Ocr":
        ocr = tuple(
            OcrResult(
                str(d.get("Text") or ""),
                tuple(str(k) for k in d.get("Keywords") or ()),
                str(d.get("SubLabel") or ""),
            )
            for d in entry.get("Details") or ()
            if isinstance(d, dict)
        )
    if kind == "Lib":
        libs = tuple(
            LibResult(str(d.get("ImageId") or ""), _int(d.get("Score")), "",
                      str(d.get("LibName") or ""))
            for d in entry.get("Details") or ()
            if isinstance(d, dict)
        )  # fmt: skip
    name = f"{kind}:{entry.get('Scene') or ''}"
    return name, SceneInfo(
        hit_flag=hit,
        score=_int(entry.get("Score")),
        label=str(entry.get("Label") or ""),
        sub_label=str(entry.get("SubLabel") or ""),
        ocr_results=ocr,
        lib_results=libs,
    )


def decode_verdict(response: dict[str, Any], item: AuditItem, raw: str) -> ImageVerdict:
    """The verdict of a successful answer (no `Error`); a per-image `NoVerdict` failure when
    the answer has no usable Suggestion, or answers another DataId."""
    data_id = str(response.get("DataId") or item.data_id)
    if data_id != item.data_id:
        return ImageVerdict(
            item.key, item.data_id, code="NoResult", retryable=True,
            message=f"the answer is for DataId {data_id!r}", raw=raw,
        )  # fmt: skip
    result = SUGGESTIONS.get(str(response.get("Suggestion")))
    if result is None:
        return ImageVerdict(
            item.key, item.data_id, code="NoVerdict", retryable=True,
            message=f"unknown Suggestion {response.get('Suggestion')!r}", raw=raw,
        )  # fmt: skip
    scenes = dict(
        _scene(entry, kind)
        for kind, name in (("Label", "LabelResults"), ("Ocr", "OcrResults"),
                           ("Lib", "LibResults"), ("Object", "ObjectResults"))
        for entry in _entries(response, name)
    )  # fmt: skip
    texts = [
        str(d.get("Text") or "")
        for entry in _entries(response, "OcrResults")
        for d in entry.get("Details") or ()
        if isinstance(d, dict) and d.get("Text")
    ]
    return ImageVerdict(
        item.key,
        item.data_id,
        job_id=str(response.get("RequestId") or ""),
        state="Success",
        result=result,
        label=str(response.get("Label") or ""),
        score=_int(response.get("Score")),
        sub_label=str(response.get("SubLabel") or ""),
        text="\n".join(texts),
        scenes=scenes,
        raw=raw,
    )
