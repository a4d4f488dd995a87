"""The emulator's CI batch image auditing (reference 3.1-3.3): a <Request> of up to 100 Inputs
(Object, Url or Content) judged by the album's rules, billed per image and scene, frozen when
a score reaches `Conf/Freeze`, answered at once or, with `Conf/Async`, as submitted jobs the
query API serves finished."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from typing import Any

from scanner.cos.xml import XmlError, parse, text
from scanner.emulator import faults
from scanner.emulator.fetch import content_verdict, judge_url
from scanner.emulator.rules import ALL_SCENES, DEFAULT_SCENES, Verdict, verdict_for
from scanner.emulator.state import EmulatorState, Job
from scanner.emulator.wire import Refusal, job_xml, request_id, response_xml

MAX_INPUTS = 100


def _scenes(conf: Any) -> tuple[str, ...]:
    if conf is None:
        return DEFAULT_SCENES
    raw = text(conf, "DetectType")
    if not raw:
        return DEFAULT_SCENES
    names = [s.strip() for s in raw.split(",") if s.strip()]
    if any(n.lower() == "all" for n in names):
        return ALL_SCENES
    known = {s.lower(): s for s in ALL_SCENES}
    unknown = [n for n in names if n.lower() not in known]
    if unknown or not names:
        raise Refusal(400, "InvalidArgument", f"DetectType {raw} is invalid")
    return tuple(dict.fromkeys(known[n.lower()] for n in names))


async def _input_verdict(
    state: EmulatorState, item: Any, scenes: tuple[str, ...], hosts: frozenset[str]
) -> tuple[str, str, Verdict]:
    """(source, value, verdict) for one Input element."""
    large = text(item, "LargeImageDetect") == "1"
    for name in ("MaxFrames", "Interval"):
        value = text(item, name)
        if value and (not value.lstrip("-").isdigit() or int(value) <= 0):
            bad = Verdict(code="InvalidArgument", message=f"Param {name} is illegal")
            return "Object", text(item, "Object"), bad
    if len(text(item, "DataId").encode()) > 512:
        return (
            "Object",
            text(item, "Object"),
            Verdict(code="InvalidArgument", message="DataId is too long"),
        )
    if item.find("Content") is not None:
        try:
            data = base64.b64decode(text(item, "Content"), validate=True)
        except (binascii.Error, ValueError):
            return "Content", "", Verdict(code="-65007", message="image decode failed")
        return "Content", "", content_verdict(data, scenes, large)
    if item.find("Object") is not None:
        key = text(item, "Object")
        obj = state.bucket.objects.get(key)
        return "Object", key, verdict_for(key, obj, scenes=scenes, large_image_detect=large)
    url = text(item, "Url")
    _judged, verdict = await judge_url(state, url, hosts, scenes, large)
    return "Url", url, verdict


def _bill(state: EmulatorState, source: str, value: str, verdict: Verdict, scenes: int) -> Verdict:
    """Count what was sent and billed; an injected per-image failure replaces the verdict."""
    if source in ("Object", "Url"):
        state.stats.sent[value] += 1
    if (
        not verdict.code
        and state.faults.image_failure_rate
        and state.rng.random() < state.faults.image_failure_rate
    ):
        verdict = Verdict(code="-65010", message="download failed (injected)")
        state.stats.faults["image_failure"] += 1
    if verdict.code:
        state.stats.image_failures[verdict.code] += 1
        return verdict
    if source in ("Object", "Url"):
        state.stats.audits[value] += 1
        state.stats.changes.changed()
        obj = state.bucket.objects.get(value)
        if obj is not None:
            state.stats.contents[f"{obj.etag}/{obj.size}"] += 1
    state.stats.billed_units += scenes
    state.stats.large_images += verdict.compressed
    return verdict


def _freeze_thresholds(conf: Any) -> dict[str, int]:
    """Scene -> score at or above which the service freezes an audited object."""
    block = conf.find("Freeze") if conf is not None else None
    if block is None:
        return {}
    out = {}
    for child in block:
        name = child.tag.removesuffix("Score")
        if name in ALL_SCENES and (child.text or "").strip().isdigit():
            if 0 < int(child.text or "0") <= 100:
                out[name] = int(child.text or "0")
    return out


def _freezes(verdict: Verdict, thresholds: dict[str, int]) -> bool:
    return any(h.scene in thresholds and h.score >= thresholds[h.scene] for h in verdict.hits)


async def audit(state: EmulatorState, body: bytes, hosts: frozenset[str] = frozenset()) -> str:
    """Synchronous (or async-submitted) batch image audit (reference 3.1-3.3)."""
    try:
        root = parse(body)
    except XmlError as exc:
        raise Refusal(400, "InvalidContent", f"request body is malformed: {exc}") from None
    inputs = root.findall("Input") if root.tag == "Request" else []
    if not inputs:
        raise Refusal(400, "InvalidArgument", "Request must contain at least one Input")
    if len(inputs) > MAX_INPUTS:
        raise Refusal(400, "InvalidArgument", f"at most {MAX_INPUTS} Input per request")
    conf = root.find("Conf")
    scenes = _scenes(conf)
    is_async = conf is not None and text(conf, "Async") == "1"
    freeze = _freeze_thresholds(conf)
    jobs = []
    judged = await asyncio.gather(  # URL inputs are fetched at once, as a service would
        *(_input_verdict(state, item, scenes, hosts) for item in inputs)
    )
    for item, (source, value, verdict) in zip(inputs, judged, strict=True):
        verdict = _bill(state, source, value, verdict, len(scenes))
        token = text(item, "UserInfo/TokenId")
        if token:
            state.stats.users[token] += 1
        forbid = None
        if freeze and not verdict.code:
            forbid = int(source == "Object" and _freezes(verdict, freeze))
            if forbid:  # the service makes the object private (reference 10)
                state.acls[f"{state.bucket_name}/{value}"] = "private"
        job_id = "si" + f"{state.rng.getrandbits(128):032x}"
        data_id = text(item, "DataId")
        job = functools.partial(
            job_xml,
            data_id=data_id,
            job_id=job_id,
            source=source,
            value=value,
            verdict=verdict,
            scenes=scenes,
            forbid_state=forbid,
        )
        done = job()
        if is_async and not verdict.code:
            state.jobs[job_id] = Job(done)  # served finished by the query API
            done = job(state="Submitted")
        jobs.append(done)
    return response_xml(faults.mangle_jobs(state, jobs), request_id())


BADCASE_TYPES = {"1": "Text", "2": "Url"}


def badcase(state: EmulatorState, body: bytes) -> str:
    """`POST /report/badcase` (reference 15): a wrong verdict told to the service. Recorded in
    `stats.badcases` as received; it changes no verdict (the service's doesn't either)."""
    try:
        root = parse(body)
    except XmlError as exc:
        raise Refusal(400, "InvalidContent", f"request body is malformed: {exc}") from None
    if root.tag != "Request":
        raise Refusal(400, "InvalidArgument", "the root element must be Request")
    fields = {child.tag: child.text or "" for child in root}
    kind = fields.get("ContentType", "")
    if kind not in BADCASE_TYPES:
        raise Refusal(400, "InvalidArgument", "ContentType must be 1 (text) or 2 (image)")
    for needed in ("Label", "SuggestedLabel", BADCASE_TYPES[kind]):
        if not fields.get(needed):
            raise Refusal(400, "InvalidArgument", f"{needed} is required")
    state.stats.badcases.append(fields)
    return f"<Response><RequestId>{request_id()}</RequestId></Response>"
