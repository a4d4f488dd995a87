"""Moderation jobs of videos, voice notes and documents (reference 12): `POST /<kind>/auditing`
submits one object, `GET /<kind>/auditing/<JobId>` asks how it went. Both on the CI host,
signed as every CI request, under the jobs' own budget (`[jobs] qps`, submits and queries
together).

A submit is billed when CI takes it, whether or not its answer reaches us: one whose answer was
lost after it left is sent again at most `[audit] resend_after_timeout` times, the verdict then
counted as possibly billed twice, and after that the object fails `timeout-maybe-billed` (the
rule of every audit request: `Resends`). A query bills nothing and is retried freely. A 4xx
for one job (a file CI will not take) is that object's failure; refused credentials end the
scan, as they do for images.

The verdict of a job is its Result, Label, SubLabel and Score (a document's `Suggestion` is its
Result); its frames, sections and pages stay in the raw answer kept with the verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

import anyio

from scanner.audit.client import Resends, budgeted, fail_all
from scanner.audit.codec import MAX_USER_BYTES, decode_job
from scanner.audit.policy import AuditOptions, xml_safe
from scanner.clock import Clock
from scanner.config import AuditSettings, CosSettings
from scanner.config.settings import JobSettings
from scanner.cos.client import HttpClient, Reply, ci_service, unreadable
from scanner.cos.xml import Node, XmlError, parse, to_int, tostring
from scanner.errors import OnRetry, ServiceError
from scanner.limiter import AuditBudget
from scanner.media import extension
from scanner.models import AuditItem, ImageVerdict
from scanner.retry import RetryPolicy, retrying

JOB_KINDS = ("video", "audio", "document")
FINAL_STATES = frozenset({"Success", "Failed"})
#: How long CI keeps a job's answer (reference 12.6): a stored JobId older than this is gone.
RETENTION_DAYS = {"video": 30, "audio": 90, "document": 90}
#: The state of a query whose answer could not be read (not CI's: the job is asked again).
UNREADABLE = "Unreadable"
#: A query for a JobId CI does not know (gone after its retention, or never taken).
NOT_FOUND = "job-not-found"


@dataclass(frozen=True, slots=True)
class Units:
    """What a job was billed for, from its answer: frames (video), seconds of sound (voice
    notes, a video's soundtrack) and pages (documents)."""

    frames: int = 0
    seconds: float = 0.0
    pages: int = 0


@dataclass(frozen=True, slots=True)
class JobAnswer:
    """A query's answer: the job's state and, once it is final, the object's verdict (or its
    per-job failure) and what it was billed for."""

    state: str
    verdict: ImageVerdict | None = None
    units: Units = Units()
    unreadable: ImageVerdict | None = None  # an answer that could not be read: ask again

    @property
    def final(self) -> bool:
        return self.verdict is not None


def data_id(key: str) -> str:
    """A job's DataId: short and XML-safe whatever the key (DataId <= 512 bytes, keys 850)."""
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def encode_job(kind: str, item: AuditItem, options: AuditOptions) -> bytes:
    """The <Request> body of a job for `item` (reference 12.3)."""
    if not xml_safe(item.key) or not xml_safe(item.url):
        raise ValueError(f"key {item.key!r} has characters XML cannot carry")
    source = (
        f"<Url>{escape(item.url)}</Url>" if item.url else f"<Object>{escape(item.key)}</Object>"
    )
    user = ""
    if item.user and len(item.user.encode()) <= MAX_USER_BYTES and xml_safe(item.user):
        user = f"<UserInfo><TokenId>{escape(item.user)}</TokenId></UserInfo>"
    typ = f"<Type>{escape(extension(item.key))}</Type>" if kind == "document" else ""
    conf = ""
    if options.biz_type:
        conf += f"<BizType>{escape(options.biz_type)}</BizType>"
    if options.detect_type:
        conf += f"<DetectType>{escape(options.detect_type)}</DetectType>"
    if kind == "video":
        v = dict(options.video)
        conf += (
            f"<Snapshot><Mode>{v['snapshot_mode']}</Mode><Count>{v['snapshot_count']}</Count>"
            f"<TimeInterval>{v['snapshot_interval']}</TimeInterval></Snapshot>"
            f"<DetectContent>{v['detect_content']}</DetectContent>"
        )
    if options.freeze and not item.url:  # Freeze: only for Object inputs (reference 12.3)
        scores = "".join(f"<{scene}Score>{score}</{scene}Score>" for scene, score in options.freeze)
        conf += f"<Freeze>{scores}</Freeze>"
    body = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Request><Input>{source}{typ}'
        f"<DataId>{escape(item.data_id)}</DataId>{user}</Input><Conf>{conf}</Conf></Request>"
    )
    return body.encode()


def _detail(body: bytes) -> Node:
    root = parse(body)
    jd = root.find("JobsDetail")
    if root.tag != "Response" or jd is None:
        raise ValueError("expected <Response><JobsDetail>")
    return jd


def decode_submit(body: bytes, item: AuditItem) -> ImageVerdict:
    """The submitted job (its JobId and State, no verdict yet), or the object's failure."""
    jd = _detail(body)
    job_id = (jd.findtext("JobId") or "").strip()
    code = (jd.findtext("Code") or "").strip()
    if (code and code not in ("0", "Success")) or not job_id:
        message = jd.findtext("Message") or "the job was not created"
        return fail_all([item], code or "NoJobId", message)[0]
    return ImageVerdict(item.key, item.data_id, job_id=job_id, state=jd.findtext("State") or "")


def units_of(jd: Node) -> Units:
    """Frames, seconds of sound and pages of a final answer."""
    seconds = 0.0
    for tag in ("Section", "AudioSection"):
        for section in jd.iterfind(tag):
            end = to_int(section.findtext("OffsetTime") or "0") + to_int(
                section.findtext("Duration") or "0"
            )
            seconds = max(seconds, end / 1000)
    return Units(
        to_int(jd.findtext("SnapshotCount") or "0"),
        seconds,
        to_int(jd.findtext("PageCount") or "0"),
    )


def _scene_score(jd: Node) -> int:
    """The highest scene score of an answer that gives no job-level Score."""
    scores = [to_int(e.findtext("Score") or "0") for e in jd if e.tag.endswith("Info")]
    scores += [to_int(e.findtext("Score") or "0") for e in jd.iterfind("Labels/*")]
    return max(scores, default=0)


def decode_query(body: bytes, item: AuditItem) -> JobAnswer:
    """A query's answer for `item`'s job; `Failed` is the object's failure with the job's Code
    and Message (final: `scan --retry-failed` decides about another job)."""
    jd = _detail(body)
    state = (jd.findtext("State") or "").strip()
    if state not in FINAL_STATES:
        return JobAnswer(state or "Submitted")
    raw = tostring(jd)
    fields = {child.tag: child.text or "" for child in jd}
    if "Result" not in fields and "Suggestion" in fields:
        fields["Result"] = fields["Suggestion"]  # documents (reference 12.5)
    if state == "Success" and not fields.get("Score"):
        fields["Score"] = str(_scene_score(jd))
    verdict = decode_job(jd, item, raw, (fields, []))
    if verdict.failed:
        verdict = replace(verdict, retryable=False)
    return JobAnswer(state, verdict, units_of(jd) if state == "Success" else Units())


class JobClient:
    """Submits and queries the jobs of one bucket."""

    def __init__(
        self,
        http: HttpClient,
        cos: CosSettings,
        audit: AuditSettings,
        jobs: JobSettings,
        options: AuditOptions,
        *,
        retry: RetryPolicy,
        clock: Clock,
        on_retry: OnRetry | None = None,
    ) -> None:
        self._http = http
        self._service = ci_service(cos, audit)
        self._resends = audit.resend_after_timeout
        self._jobs = jobs
        self.options = options
        self._retry = retry
        self._clock = clock
        self._on_retry = on_retry
        self.budget = AuditBudget(jobs.concurrency, jobs.qps, clock)
        self.requests = 0

    async def _call(
        self, method: str, path: str, body: bytes, stop: anyio.Event | None, resends: Resends
    ) -> Reply:
        async def send() -> Reply:
            self.requests += 1
            return await self._http.send(
                self._service, method, path, body=body,
                content_type="application/xml" if body else "", timeout_s=self._jobs.timeout,
            )  # fmt: skip

        async def attempt() -> Reply:
            return await budgeted(self.budget, stop, resends, send)

        return await retrying(self._retry, self._clock, attempt, on_retry=self._on_retry, stop=stop)

    async def submit(
        self, kind: str, item: AuditItem, stop: anyio.Event | None = None
    ) -> ImageVerdict:
        """The job created for `item` (`job_id` set, `maybe_double` after a resent lost
        answer), or the object's failure."""
        body = encode_job(kind, item, self.options)
        resends = Resends(self._resends, stop)

        async def call() -> list[ImageVerdict]:
            sent = self._call("POST", f"/{kind}/auditing", body, stop, resends)
            return [await self._read(sent, lambda reply: decode_submit(reply.body, item), item)]

        return (await resends.run([item], call))[0]

    async def query(
        self, kind: str, job_id: str, item: AuditItem, stop: anyio.Event | None = None
    ) -> JobAnswer:
        """How the job is going: a state to ask again about later, or final."""
        answer: JobAnswer | None = None

        def read(reply: Reply) -> ImageVerdict:
            nonlocal answer
            answer = decode_query(reply.body, item)
            return answer.verdict or ImageVerdict(item.key, item.data_id, state=answer.state)

        never = Resends(1_000_000, None)  # a query bills nothing: a lost answer is asked again
        verdict = await self._read(
            self._call("GET", f"/{kind}/auditing/{job_id}", b"", stop, never), read, item
        )
        if answer is not None:
            return answer
        if verdict.code == "unreadable-answer":  # a query bills nothing: ask again later
            return JobAnswer(UNREADABLE, unreadable=verdict)
        return JobAnswer("Failed", verdict)  # refused: final for this object

    @staticmethod
    async def _read(
        reply: Awaitable[Reply], read: Callable[[Reply], ImageVerdict], item: AuditItem
    ) -> ImageVerdict:
        """`read` of the awaited reply; a 4xx for this one job, or an answer that cannot be
        read, is the object's failure."""
        try:
            got = await reply
        except ServiceError as exc:
            if exc.retryable or exc.status is None or exc.status >= 500:
                raise
            code = NOT_FOUND if exc.status == 404 or "not exist" in exc.message else exc.code
            return fail_all([item], code or f"HTTP{exc.status}", exc.message)[0]
        try:
            return read(got)
        except (XmlError, ValueError) as exc:
            error = unreadable("audit", "job answer", got, exc)
            return fail_all([item], "unreadable-answer", str(error))[0]
