"""The CI wire format of batch image auditing: request bodies from items, verdicts from
answers. Pure: no I/O. (What is audited and how: `policy`; stored answers shown: `raw`.)

Results are matched to inputs by DataId (the client always sends a unique one), falling back
to the echoed Object for answers that leave DataId empty (per-image failures may), never by
position. An input the answer does not mention becomes a retryable `NoResult` failure; an
answer for an unknown DataId is ignored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from xml.sax.saxutils import escape

from scanner.audit.policy import AuditOptions, xml_safe
from scanner.cos.xml import Node, parse, text, to_int, tostring
from scanner.models import (
    SCENES,
    AuditItem,
    ImageVerdict,
    LibResult,
    ListResult,
    OcrResult,
    Result,
    SceneInfo,
)

MAX_INPUTS = 100
MAX_DATA_ID_BYTES = 512
MAX_USER_BYTES = 128  # each UserInfo field (reference 3.1)

#: Per-image failure codes worth another attempt later; every other code is final.
RETRYABLE_IMAGE_CODES = frozenset(
    {
        "-65010",  # download failed
        "InternalError",
        "ResourceDownloadFailed",
        "ServiceUnavailable",
        "SlowDown",
        "1020",
        "RequestTimeout",
        "Timeout",
        "NoResult",
        "NoVerdict",
    }
)


def _esc(value: str) -> str:
    # \r would be normalised to \n by any XML parser: send it as a character reference.
    return escape(value).replace("\r", "&#13;")


def _input_options(options: AuditOptions) -> str:
    extra = ""
    if options.interval:
        extra += f"<Interval>{options.interval}</Interval>"
    if options.max_frames:
        extra += f"<MaxFrames>{options.max_frames}</MaxFrames>"
    if options.large_image_detect:
        extra += "<LargeImageDetect>1</LargeImageDetect>"
    return extra


def _input(item: AuditItem, extra: str) -> str:
    if len(item.data_id.encode()) > MAX_DATA_ID_BYTES or not xml_safe(item.data_id):
        raise ValueError(f"DataId {item.data_id!r} is over 512 bytes or not XML-safe")
    if not xml_safe(item.key) or not xml_safe(item.url):
        raise ValueError(f"key {item.key!r} has characters XML cannot carry")
    user = ""
    if item.user and len(item.user.encode()) <= MAX_USER_BYTES and xml_safe(item.user):
        user = f"<UserInfo><TokenId>{_esc(item.user)}</TokenId></UserInfo>"
    source = f"<Url>{_esc(item.url)}</Url>" if item.url else f"<Object>{_esc(item.key)}</Object>"
    return f"<Input>{source}<DataId>{_esc(item.data_id)}</DataId>{extra}{user}</Input>"


def encode_batch(items: Sequence[AuditItem], options: AuditOptions) -> bytes:
    """The <Request> body for a synchronous batch audit of `items` by Object."""
    if not 1 <= len(items) <= MAX_INPUTS:
        raise ValueError(f"a batch holds 1..{MAX_INPUTS} images (got {len(items)})")
    if len({i.data_id for i in items}) != len(items):
        raise ValueError("DataIds in a batch must be unique")
    extra = _input_options(options)
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<Request>']
    parts.extend(_input(item, extra) for item in items)
    parts.append("<Conf>")
    if options.biz_type:
        parts.append(f"<BizType>{_esc(options.biz_type)}</BizType>")
    if options.detect_type:
        parts.append(f"<DetectType>{_esc(options.detect_type)}</DetectType>")
    parts.append("<Async>0</Async>")
    if options.freeze:  # reference 10: <Freeze><PornScore>90</PornScore>...</Freeze>
        scores = "".join(f"<{scene}Score>{score}</{scene}Score>" for scene, score in options.freeze)
        parts.append(f"<Freeze>{scores}</Freeze>")
    parts.append("</Conf></Request>")
    return "".join(parts).encode()


def _keywords(elem: Node) -> tuple[str, ...]:
    return tuple(k.text or "" for k in elem.iterfind("Keywords"))


def _fields(elem: Node) -> dict[str, str]:
    """Child tag -> text in one pass (the decode hot path: no repeated find())."""
    return {child.tag: child.text or "" for child in elem}


def _scene(elem: Node) -> SceneInfo:
    f = _fields(elem)
    ocr: tuple[OcrResult, ...] = ()
    libs: tuple[LibResult, ...] = ()
    if "OcrResults" in f:
        ocr = tuple(
            OcrResult(text(o, "Text"), _keywords(o), text(o, "SubLabel"))
            for o in elem.iterfind("OcrResults")
        )
    if "LibResults" in f:
        libs = tuple(
            LibResult(text(lib, "ImageId"), to_int(text(lib, "Score", "0")),
                      text(lib, "LibType"), text(lib, "LibName"), _keywords(lib))
            for lib in elem.iterfind("LibResults")
        )  # fmt: skip
    return SceneInfo(
        code=to_int(f.get("Code") or "0"),
        msg=f.get("Msg", ""),
        hit_flag=to_int(f.get("HitFlag") or "0"),
        score=to_int(f.get("Score") or "0"),
        label=f.get("Label", ""),
        category=f.get("Category", ""),
        sub_label=f.get("SubLabel", ""),
        ocr_results=ocr,
        lib_results=libs,
    )


def _failure(item: AuditItem, code: str, message: str, **kw: object) -> ImageVerdict:
    return ImageVerdict(
        key=item.key,
        data_id=item.data_id,
        code=code,
        message=message,
        retryable=code in RETRYABLE_IMAGE_CODES,
        **kw,  # type: ignore[arg-type]
    )


_SCENE_TAGS = frozenset(SCENES)


class LazyScenes(Mapping[str, SceneInfo]):
    """The scene blocks of a verdict, typed on first access from the JobsDetail's raw XML.

    The scan path needs only their Codes (checked while decoding); building every SceneInfo
    was a third of the client's CPU per image, and holding on to the answer's Element tree
    until the verdict is committed made every answer survive into the oldest GC generation
    (full collections of ~100 ms, a few per second, stalling the event loop).
    """

    __slots__ = ("_parsed", "_raw", "_tags")

    def __init__(self, tags: tuple[str, ...], raw: str) -> None:
        self._tags = tags
        self._raw = raw
        self._parsed: dict[str, SceneInfo] | None = None

    def _all(self) -> dict[str, SceneInfo]:
        if self._parsed is None:
            jd = parse(self._raw.encode())
            self._parsed = {e.tag: _scene(e) for e in jd if e.tag in self._tags}
        return self._parsed

    def __getitem__(self, tag: str) -> SceneInfo:
        return self._all()[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tags)

    def __len__(self) -> int:
        return len(self._tags)

    def __repr__(self) -> str:
        return f"LazyScenes({list(self._tags)})"


def _children(jd: Node) -> tuple[dict[str, str], list[str]]:
    """A JobsDetail's child tag -> text and its scene tags, in one pass over its children
    (lxml makes an object per child visited, and its find() is Python: one pass, no find)."""
    fields: dict[str, str] = {}
    scenes: list[str] = []
    for child in jd:
        tag = child.tag
        fields[tag] = child.text or ""
        if tag in _SCENE_TAGS:
            scenes.append(tag)
    return fields, scenes


def _failed_scene(jd: Node) -> tuple[str, str] | None:
    """(code, message) of the first scene block that failed, if one did."""
    for e in jd:
        if e.tag in _SCENE_TAGS:
            scene = _fields(e)
            scene_code = to_int(scene.get("Code") or "0")
            if scene_code != 0:
                return str(scene_code), f"{e.tag}: {scene.get('Msg') or 'failed'}"
    return None


def decode_job(
    jd: Node, item: AuditItem, raw: str = "", parts: tuple[dict[str, str], list[str]] | None = None
) -> ImageVerdict:
    """One JobsDetail element as the verdict (or per-image failure) for `item`.

    `raw` is the element's XML as received (kept for the store and reports); `parts`, its
    `_children` when the caller has them already.
    """
    raw = raw or tostring(jd)
    f, tags = parts or _children(jd)
    job_id, state, code = f.get("JobId", ""), f.get("State", ""), f.get("Code", "")
    common = {"job_id": job_id, "state": state, "raw": raw}
    if (code and code not in ("0", "Success")) or state == "Failed":
        return _failure(item, code or "Failed", f.get("Message") or state or "failed", **common)
    scenes = LazyScenes(tuple(dict.fromkeys(tags)), raw)
    result = to_int(f.get("Result") or "-1", -1)
    if result not in (0, 1, 2):
        # no usable overall verdict: a failed scene says why (and whether to try again)
        failed_scene = _failed_scene(jd)
        if failed_scene is not None:
            return _failure(item, *failed_scene, **common)
        msg = f"answer has no valid Result ({f.get('Result', '')!r})"
        return _failure(item, "NoVerdict", msg, **common)
    # a verdict stands even when one scene failed: the failed scene stays in the raw answer
    compression = f.get("CompressionResult", "")
    forbid = f.get("ForbidState", "")
    lists: tuple[ListResult, ...] = ()
    if "ListInfo" in f:
        lists = tuple(
            ListResult(to_int(text(r, "ListType", "0")), text(r, "ListName"), text(r, "Entity"))
            for r in jd.iterfind("ListInfo/ListResults")
        )
    return ImageVerdict(
        key=item.key,
        data_id=item.data_id,
        job_id=job_id,
        state=state or "Success",
        result=Result(result),
        label=f.get("Label", ""),
        score=to_int(f.get("Score") or "0"),
        category=f.get("Category", ""),
        sub_label=f.get("SubLabel", ""),
        text=f.get("Text", ""),
        compression_result=to_int(compression) if compression else None,
        forbid_state=to_int(forbid) if forbid else None,
        scenes=scenes,
        list_results=lists,
        raw=raw,
    )


def _job_spans(body: bytes) -> list[bytes]:
    """Each <JobsDetail>...</JobsDetail> of `body` as received (bytes.find: a non-greedy
    regex over a 100 KB answer cost as much as parsing it)."""
    spans = []
    start = body.find(b"<JobsDetail>")
    while start >= 0:
        end = body.find(b"</JobsDetail>", start)
        if end < 0:
            break
        end += len(b"</JobsDetail>")
        spans.append(body[start:end])
        start = body.find(b"<JobsDetail>", end)
    return spans


def decode_results(body: bytes, items: Sequence[AuditItem]) -> list[ImageVerdict]:
    """The verdicts for `items`, in their order, from a <Response> body.

    Raises XmlError for a body that is not XML and ValueError for one that is not a Response.
    """
    root = parse(body)
    if root.tag != "Response":
        raise ValueError(f"expected <Response>, got <{root.tag}>")
    by_id = {i.data_id: i for i in items}
    by_key = {i.key: i for i in items}
    found: dict[str, ImageVerdict] = {}
    jobs = root.findall("JobsDetail")
    spans = _job_spans(body)
    raws = [s.decode() for s in spans] if len(spans) == len(jobs) else [""] * len(jobs)
    for jd, raw in zip(jobs, raws, strict=True):
        parts = _children(jd)
        data_id = parts[0].get("DataId", "")
        item = by_id.get(data_id) if data_id else by_key.get(parts[0].get("Object", ""))
        if item is not None and item.data_id not in found:
            found[item.data_id] = decode_job(jd, item, raw, parts)
    return [
        found.get(i.data_id) or _failure(i, "NoResult", "the answer did not mention this image")
        for i in items
    ]
