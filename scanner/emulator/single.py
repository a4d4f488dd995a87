"""The emulator's CI single-image API: `GET /<key>?ci-process=sensitive-content-recognition`
(or `GET /?...&detect-url=<url>`), answered with `<RecognitionResult>` (reference 3.4).

Judged by the same rules as a batch input of that key or URL, billed the same way; a failure
is an error answer (`NoSuchKey` 404 for a missing object, 400 with the failure code else).
"""

from __future__ import annotations

from aiohttp import web

from scanner.emulator.bucket import Bucket
from scanner.emulator.fetch import judge_url, own_hosts
from scanner.emulator.rules import ALL_SCENES, DEFAULT_SCENES, verdict_for
from scanner.emulator.state import EmulatorState
from scanner.emulator.wire import DECLARATION, Refusal, job_xml, request_id

_SCENES = {
    "porn": "Porn",
    "terrorist": "Terrorism",
    "politics": "Politics",
    "ads": "Ads",
    "illegal": "Illegal",
    "abuse": "Abuse",
    "teenager": "Teenager",
}


def is_single(request: web.Request) -> bool:
    return request.query.get("ci-process") == "sensitive-content-recognition"


def _scenes(raw: str) -> tuple[str, ...]:
    if not raw:
        return DEFAULT_SCENES
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in _SCENES]
    if unknown:
        raise Refusal(400, "InvalidArgument", f"detect-type {raw} is invalid")
    return tuple(s for s in ALL_SCENES if s in {_SCENES[n] for n in names})


async def recognize(state: EmulatorState, bucket: Bucket, request: web.Request) -> web.Response:
    query = request.query
    scenes = _scenes(query.get("detect-type", ""))
    large = query.get("large-image-detect") == "1"
    url = query.get("detect-url", "")
    if url:
        judged, verdict = await judge_url(state, url, own_hosts(request), scenes, large)
        source, value = "Url", url
    else:
        key = request.path[1:]
        obj = bucket.objects.get(key)
        if obj is None:
            raise Refusal(404, "NoSuchKey", "The specified key does not exist.")
        judged, verdict = key, verdict_for(key, obj, scenes=scenes, large_image_detect=large)
        source, value = "Object", key
    state.stats.sent[judged] += 1
    if verdict.code:
        state.stats.image_failures[verdict.code] += 1
        raise Refusal(400, verdict.code, verdict.message)
    state.stats.audits[judged] += 1
    state.stats.changes.changed()
    state.stats.billed_units += len(scenes)
    job = job_xml(
        data_id=query.get("dataid", ""), job_id="si" + f"{state.rng.getrandbits(128):032x}",
        source=source, value=value, verdict=verdict, scenes=scenes,
    )  # fmt: skip
    body = job.replace("<JobsDetail>", "<RecognitionResult>", 1)
    body = body.removesuffix("</JobsDetail>") + "</RecognitionResult>"
    return web.Response(
        text=DECLARATION + body,
        content_type="application/xml",
        headers={"x-cos-request-id": request_id()},
    )
