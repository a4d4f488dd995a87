"""The emulator's moderation jobs for videos, voice, text and documents (reference 12): `POST
/<kind>/auditing` submits (`Input/Object` or `Input/Url`, text also `Input/Content`, judged at
once: the submit's answer is the result; `DataId`, `UserInfo`; `Conf`
`BizType`, `DetectType`, `Snapshot{Mode,Count,TimeInterval}`, `DetectContent`), `GET
/<kind>/auditing/<JobId>` answers one `JobsDetail`. A job moves through `Submitted` (video:
`Snapshoting`), `Auditing` and ends `Success` or `Failed` after `EmulatorState.job_seconds`;
what it finds follows `media.py`. Billing, counted when the job is submitted: video frames x
scenes (and, with DetectContent, its seconds of sound), audio seconds, document pages x
scenes, a text once per scene. Stats: `jobs_submitted` per key (a key submitted twice shows),
the most jobs running at once, units by kind. Only the flagged frames and pages (and every
sound section) are listed in an answer.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from aiohttp import web

from scanner.cos.client import encode_path
from scanner.cos.signing import presign_query
from scanner.cos.xml import XmlError, parse, text
from scanner.emulator.fetch import listening_on
from scanner.emulator.media import SECTION_MS, MediaVerdict, kind_of, media_verdict
from scanner.emulator.rules import DEFAULT_SCENES, Hit, _hit, bucket_of
from scanner.emulator.state import EmulatorState
from scanner.emulator.wire import DECLARATION, Refusal, request_id
from scanner.media import frame_count

URL_SECONDS = 7200  # a frame's, section's or page's URL is valid this long (reference 12.5)
PATH = re.compile(r"^/(video|audio|text|document)/auditing(?:/([A-Za-z0-9]+))?$")
PREFIX = {"video": "av", "audio": "sa", "text": "st", "document": "sd"}
TEXT_LIMIT = 1024 * 1024  # a text file job reads at most 1 MB (reference 12.6)


@dataclass(slots=True)
class MediaJob:
    kind: str
    job_id: str
    source: str  # Object or Url
    value: str
    data_id: str
    created: float
    frames: int
    verdict: MediaVerdict
    sound: bool = False  # a video's soundtrack is moderated too (DetectContent 1)


def is_job(path: str) -> bool:
    return PATH.match(path) is not None


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _scenes(conf: Any) -> tuple[str, ...]:
    raw = text(conf, "DetectType") if conf is not None else ""
    names = tuple(s.strip() for s in raw.split(",") if s.strip())
    return names or DEFAULT_SCENES


def submit(state: EmulatorState, kind: str, body: bytes) -> str:
    try:
        root = parse(body)
    except XmlError as exc:
        raise Refusal(400, "InvalidContent", f"request body is malformed: {exc}") from None
    item, conf = root.find("Input"), root.find("Conf")
    if root.tag != "Request" or item is None:
        raise Refusal(400, "InvalidArgument", "Request/Input is required")
    source = next((t for t in ("Object", "Url", "Content") if item.find(t) is not None), "Url")
    value = text(item, source)
    if not value or (source == "Content" and kind != "text"):
        raise Refusal(400, "InvalidArgument", "Input needs an Object or a Url")
    key = {"Object": value, "Content": ""}.get(source) or unquote(urlsplit(value).path[1:])
    if kind_of(key) not in (kind, None) and kind != "document":
        raise Refusal(400, "InvalidArgument", f"{key} is not a {kind} file")
    snapshot = conf.find("Snapshot") if conf is not None else None
    mode = text(snapshot, "Mode", "Interval") if snapshot is not None else "Interval"
    try:
        count = int(text(snapshot, "Count", "100")) if snapshot is not None else 100
        interval = float(text(snapshot, "TimeInterval", "1")) if snapshot is not None else 1.0
    except ValueError:
        raise Refusal(400, "InvalidArgument", "Snapshot Count/TimeInterval are numbers") from None
    if kind == "video" and (not 0 < count <= 10_000 or mode not in ("Interval", "Average", "Fps")):
        raise Refusal(
            400, "InvalidArgument", "Snapshot: Count in (0, 10000], Mode Interval|Average|Fps"
        )
    scenes = _scenes(conf)
    if kind == "text":
        verdict = _text_verdict(state, key, value if source == "Content" else None, scenes)
    else:
        verdict = media_verdict(kind, key, state.bucket.objects.get(key), scenes)
    now = state.now()
    frames = frame_count(verdict.seconds, mode, count, interval) if kind == "video" else 0
    detect = text(conf, "DetectContent") if conf is not None else ""
    job = MediaJob(kind, PREFIX[kind] + secrets.token_hex(15), source, value,
                   text(item, "DataId"), now, frames, verdict, detect == "1")  # fmt: skip
    running = sum(1 for j in state.media_jobs.values() if now - j.created < state.job_seconds)
    state.media_jobs[job.job_id] = job
    stats = state.stats
    stats.jobs_submitted[f"{kind}:{key}"] += 1
    stats.job_ids.setdefault(f"{kind}:{key}", []).append(job.job_id)
    stats.changes.changed()
    stats.max_jobs_running = max(stats.max_jobs_running, running + 1)
    if not verdict.code:
        sound = verdict.seconds if kind == "audio" or job.sound else 0
        units = {"video": frames, "audio": 0, "document": verdict.pages, "text": 1}[kind]
        stats.job_units[kind] += units * len(scenes)
        stats.job_units["audio_seconds"] += sound
    if source == "Content":  # judged at once: the answer is the query's (reference 12.3)
        job.created = now - state.job_seconds
        return query(state, kind, job.job_id, "")
    detail = (f"<JobsDetail><JobId>{job.job_id}</JobId><State>Submitted</State>"
              f"<CreationTime>{_stamp(now)}</CreationTime><{source}>{escape(value)}</{source}>"
              f"<DataId>{escape(job.data_id)}</DataId></JobsDetail>")  # fmt: skip
    return f"{DECLARATION}<Response>{detail}<RequestId>{request_id()}</RequestId></Response>"


def _text_verdict(
    state: EmulatorState, key: str, content: str | None, scenes: tuple[str, ...]
) -> MediaVerdict:
    """A text job's finding: of its base64 Content (judged at once), or of a text file."""
    if content is not None:
        try:
            seed = base64.b64decode(content, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Refusal(400, "InvalidArgument", "Content is not base64 of UTF-8") from None
        if len(seed) > 10_000:
            raise Refusal(400, "InvalidArgument", "Content holds more than 10,000 characters")
        return MediaVerdict("text", hit=_hit(seed, bucket_of(seed), scenes))
    obj = state.bucket.objects.get(key)
    if obj is None:
        return MediaVerdict("text", "-1404", "file not found")
    if obj.size > TEXT_LIMIT:
        return MediaVerdict("text", "-1201", "file too large")
    seed = obj.content or key
    return MediaVerdict("text", hit=_hit(seed, bucket_of(seed), scenes))


def query(state: EmulatorState, kind: str, job_id: str, base: str) -> str:
    job = state.media_jobs.get(job_id)
    if job is None or job.kind != kind:
        raise Refusal(400, "InvalidArgument", "job does not exist")
    elapsed = (state.now() - job.created) / max(state.job_seconds, 1e-6)
    head = (f"<JobId>{job.job_id}</JobId><CreationTime>{_stamp(job.created)}</CreationTime>"
            f"<{job.source}>{escape(job.value)}</{job.source}>"
            f"<DataId>{escape(job.data_id)}</DataId>")  # fmt: skip
    if elapsed < 1.0:
        running = (
            "Submitted"
            if elapsed < 1 / 3
            else ("Snapshoting" if kind == "video" and elapsed < 2 / 3 else "Auditing")
        )
        body = f"<State>{running}</State>{head}"
    elif job.verdict.code:
        body = (f"<Code>{job.verdict.code}</Code><Message>{escape(job.verdict.message)}</Message>"
                f"<State>Failed</State>{head}")  # fmt: skip
    else:
        body = f"<State>Success</State>{head}{_findings(job, state, base)}"
    rid = request_id()
    detail = f"<JobsDetail>{body}</JobsDetail>"
    return f"{DECLARATION}<Response>{detail}<RequestId>{rid}</RequestId></Response>"


def _info(hit: Hit, count: int | None = None, extra: str = "") -> str:
    """A scene's `<PornInfo>`-style element of a hit."""
    counted = f"<Count>{count}</Count>" if count is not None else ""
    return (f"<{hit.scene}Info><HitFlag>1</HitFlag>{counted}<Score>{hit.score}</Score>{extra}"
            f"</{hit.scene}Info>")  # fmt: skip


Link = Callable[[str], str]


def _linker(state: EmulatorState, base: str, key: str) -> Link:
    """Presigned GETs of `key` with a processing parameter, valid for two hours from the
    query, as CI gives frame, section and page URLs (reference 12.5); XML-escaped."""
    secret_id, pair = next(iter(state.keys.items()))
    now = int(state.now())
    signed = presign_query(path="/" + key, host=None, secret_id=secret_id,
                           secret_key=pair.secret_key, start=now, end=now + URL_SECONDS,
                           token=pair.token)  # fmt: skip
    return lambda process: escape(f"{base}{encode_path(key)}?{process}&{signed}")


def _findings(job: MediaJob, state: EmulatorState, base: str) -> str:
    hit = job.verdict.hit
    result, label, sub, score = (
        (hit.result, hit.scene, hit.sub_label, hit.score) if hit else (0, "Normal", "", 0)
    )
    verdict = "Suggestion" if job.kind == "document" else "Result"
    head = (f"<Label>{label}</Label><SubLabel>{sub}</SubLabel><{verdict}>{result}</{verdict}>"
            f"<Score>{score}</Score><ForbidState>0</ForbidState>")  # fmt: skip
    link = _linker(state, base, job.value if job.source == "Object" else "media")
    if job.kind == "video":
        return head + _video(job, hit, link)
    if job.kind == "audio":
        return head + _audio(job, hit, link)
    if job.kind == "text":
        return head + _text(job, hit)
    return head + _document(job, hit, link)


def _video(job: MediaJob, hit: Hit | None, link: Link) -> str:
    out = [f"<SnapshotCount>{job.frames}</SnapshotCount>"]
    if job.sound:
        out.append(_sections("AudioSection", job, None, link("ci-process=audio")))
    if hit is None:
        return "".join(out)
    frames = range(2, job.frames, 10)  # every 10th frame from the 3rd shows it
    out.append(_info(hit, len(frames)))
    step = job.verdict.seconds * 1000 // max(job.frames, 1)
    for i in frames:
        label = f"<Label>{hit.scene}</Label><SubLabel>{hit.sub_label}</SubLabel>"
        out.append(
            f"<Snapshot><Url>{link(f'ci-process=snapshot&time={i * step / 1000:g}')}</Url>"
            f"<SnapshotTime>{i * step}</SnapshotTime><Text>{escape(hit.ocr_text)}</Text>"
            f"{_info(hit, extra=label)}</Snapshot>"
        )
    return "".join(out)


def _sections(tag: str, job: MediaJob, hit: Hit | None, link: str) -> str:
    """Every 15 s section of the sound: the first one holds the hit, if any."""
    out, total = [], job.verdict.seconds * 1000
    for offset in range(0, total, SECTION_MS):
        found = hit if offset == 0 else None
        said = escape(found.ocr_text) if found else ""
        label = (found.scene, found.sub_label, found.result) if found else ("Normal", "", 0)
        info = _info(found, extra="".join(f"<Keywords>{escape(k)}</Keywords>"
                                          for k in found.keywords)) if found else ""  # fmt: skip
        out.append(
            f"<{tag}><Url>{link}</Url><Text>{said}</Text><OffsetTime>{offset}</OffsetTime>"
            f"<Duration>{min(SECTION_MS, total - offset)}</Duration><Label>{label[0]}</Label>"
            f"<SubLabel>{label[1]}</SubLabel><Result>{label[2]}</Result>{info}</{tag}>"
        )
    return "".join(out)


def _audio(job: MediaJob, hit: Hit | None, link: Link) -> str:
    spoken = escape(hit.ocr_text) if hit else ""
    scene = _info(hit, 1) if hit else ""
    sections = _sections("Section", job, hit, link("ci-process=audio"))
    return f"<AudioText>{spoken}</AudioText>{scene}{sections}"


def _text(job: MediaJob, hit: Hit | None) -> str:
    """A text job's one Section (reference 12.5: SectionCount is always 1)."""
    label, result = (hit.scene, hit.result) if hit else ("Normal", 0)
    words = "".join(f"<Keywords>{escape(k)}</Keywords>" for k in hit.keywords) if hit else ""
    info = _info(hit, 1, words) if hit else ""
    return (f"<SectionCount>1</SectionCount>{info}<Section><StartByte>0</StartByte>"
            f"<Label>{label}</Label><Result>{result}</Result>{info}</Section>")  # fmt: skip


def _document(job: MediaJob, hit: Hit | None, link: Link) -> str:
    pages = f"<PageCount>{job.verdict.pages}</PageCount>"
    if hit is None:
        return pages
    return (
        f"{pages}<Labels>{_info(hit)}</Labels><PageSegment><Results><Url>{link('ci-process=doc-preview&page=1')}</Url>"
        f"<Text>{escape(hit.ocr_text)}</Text><PageNumber>1</PageNumber>"
        f"<SheetNumber>0</SheetNumber><Label>{hit.scene}</Label>{_info(hit)}"
        f"<Suggestion>{hit.result}</Suggestion></Results></PageSegment>"
    )


def _reachable(request: web.Request) -> str:
    """The base URL frame links are given under: the socket the emulator listens on (an IP
    Host is its own bucket), since a client's Host names a virtual host only DNS could find."""
    return f"{request.scheme}://{listening_on(request) or request.host}"


async def handle(state: EmulatorState, request: web.Request) -> str:
    """A submit (POST /<kind>/auditing) or a query (GET /<kind>/auditing/<JobId>)."""
    match = PATH.match(request.path)
    assert match is not None, "routed here by is_job"
    kind, job_id = match[1], match[2]
    if request.method == "POST" and job_id is None:
        return submit(state, kind, await request.read())
    if request.method == "GET" and job_id is not None:
        return query(state, kind, job_id, _reachable(request))
    raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed.")
