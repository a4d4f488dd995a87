"""The job stage of a scan: videos, voice notes and documents (`[scan] media`), moderated by CI
jobs beside the images, under their own budget (`[jobs]`).

    source ──media refs──▶ JobQueue ──▶ job workers x [jobs] concurrency ──outcomes──▶ writer

A worker holds one object from its submit to its final answer, so jobs in flight never exceed
`[jobs] concurrency`. The JobId is stored in the transaction that records the submission;
after that the object is only ever asked about (`GET /<kind>/auditing/<JobId>`, waiting
`poll_interval` doubled up to `poll_max` between queries), by this run or by the resume of a
stopped or killed one, which asks about its stored jobs before it submits anything new. A job
CI no longer knows past its retention is submitted again (possibly billed twice).

Jobs take minutes where images take a second: the queue never makes the source wait. Past
`capacity` refs it drops what comes (the objects stay pending in the store, already recorded)
and, once the listing is done and the queue has drained, takes the scan's pending media from
the store: images keep their whole budget whatever the jobs do.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import anyio

from scanner.audit.jobs import NOT_FOUND, RETENTION_DAYS, JobClient, data_id
from scanner.clock import Clock
from scanner.config.settings import JobSettings
from scanner.cos.client import HttpClient
from scanner.errors import AbandonedError, OnRetry
from scanner.media import IMAGE, class_of
from scanner.models import AuditItem, ImageVerdict, ObjectRef
from scanner.scan.plan import ScanPlan
from scanner.scan.progress import Progress
from scanner.store import Store, StoredJob

#: Unreadable answers in a row after which a job's object fails `unreadable-answer`.
UNREADABLE_TRIES = 5
#: Media refs a queue holds before it leaves the rest in the store for later (~10 MB).
QUEUE_CAPACITY = 20_000
#: What the stage hands each outcome to (the pipeline's writer); returns once it is committed.
Deliver = Callable[[ObjectRef, ImageVerdict], Awaitable[None]]


def is_job(key: str) -> bool:
    kind = class_of(key)
    return kind is not None and kind != IMAGE


@dataclass
class JobQueue:
    """Media refs waiting for a worker; never blocks the sender (see the module's text)."""

    capacity: int = field(default_factory=lambda: QUEUE_CAPACITY)
    waiting: deque[ObjectRef] = field(default_factory=deque)
    routed: set[str] = field(default_factory=set)  # keys given to a worker this pass
    dropped: bool = False  # refs were left in the store for the refill
    closed: bool = False  # the source is done
    _ready: anyio.Event = field(default_factory=anyio.Event)
    _refilling: bool = False

    def put(self, ref: ObjectRef) -> bool:
        """Whether `ref` was taken; False: left pending in the store for the refill."""
        if ref.key in self.routed:
            return True
        self._ready.set()
        if len(self.waiting) >= self.capacity:
            self.dropped = True
            return False
        self.waiting.append(ref)
        self.routed.add(ref.key)
        return True

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self, refill: Callable[[], Awaitable[None]]) -> ObjectRef | None:
        """The next ref; None once the source is done and nothing is left anywhere (one
        worker refills from the store while the others wait for what it finds)."""
        while True:
            if self.waiting:
                return self.waiting.popleft()
            if self.closed and not self._refilling:
                if not self.dropped:
                    return None
                self.dropped, self._refilling = False, True
                try:
                    await refill()  # puts what the store still has pending
                finally:
                    self._refilling = False
                    self._ready.set()
                continue
            if self._ready.is_set():
                self._ready = anyio.Event()
            await self._ready.wait()


@dataclass(frozen=True, slots=True)
class JobStage:
    """What the workers run with: the client, the store, the scan and its bucket."""

    client: JobClient
    store: Store
    settings: JobSettings
    scope: str  # the bucket's id (the verdicts' target)

    async def run(
        self, scan_id: int, ref: ObjectRef, user: str, stop: anyio.Event
    ) -> ImageVerdict | None:
        """The object's verdict or failure; None when the stop came first (a stored job is
        asked about by the next run, an unsent one is submitted by it)."""
        kind = class_of(ref.key) or ""
        item = AuditItem(ref.key, data_id(ref.key), user)
        stored = await self.store.stored_job(scan_id, ref.key)
        resumed = stored is not None and stored.of(ref) and stored.kind == kind
        try:
            if stored is not None and resumed:
                verdict = await self._answer(scan_id, kind, stored.job_id, item, stop, 0.0)
                if verdict is None or not _gone(verdict, stored):  # as its submit was counted
                    return verdict and replace(verdict, maybe_double=stored.maybe_double)
                again = True  # CI no longer knows the job: a new one (maybe billed twice)
            else:
                again = False
            return await self._submit(scan_id, kind, ref, item, stop, again)
        except AbandonedError:
            return None

    async def _submit(
        self, scan_id: int, kind: str, ref: ObjectRef, item: AuditItem, stop: anyio.Event,
        again: bool,
    ) -> ImageVerdict | None:  # fmt: skip
        if stop.is_set():
            return None
        sub = await self.client.submit(kind, item, stop)
        if sub.failed:
            return sub
        doubled = sub.maybe_double or again
        policy = self.client.options.job_fingerprint(kind)
        await self.store.record_job(scan_id, self.scope, ref, kind, sub.job_id, sub.state,
                                    policy=policy, maybe_double=doubled)  # fmt: skip
        verdict = await self._answer(
            scan_id, kind, sub.job_id, item, stop, self.settings.poll_interval
        )
        return verdict if verdict is None else replace(verdict, maybe_double=doubled)

    async def _answer(
        self, scan_id: int, kind: str, job_id: str, item: AuditItem, stop: anyio.Event,
        wait: float,
    ) -> ImageVerdict | None:  # fmt: skip
        """Ask about the job until it is final (None at the stop)."""
        settings, unreadable = self.settings, 0
        while True:
            if wait > 0:
                with anyio.move_on_after(wait):
                    await stop.wait()
            if stop.is_set():
                return None
            answer = await self.client.query(kind, job_id, item, stop)
            unreadable = unreadable + 1 if answer.unreadable is not None else 0
            if answer.unreadable is not None and unreadable >= UNREADABLE_TRIES:
                return replace(answer.unreadable, job_id=job_id)  # final: the id stays stored
            if answer.verdict is not None:
                units = answer.units
                await self.store.finish_job(
                    scan_id, item.key, answer.state, units.frames, units.seconds, units.pages
                )
                return replace(answer.verdict, job_id=job_id)
            wait = min(max(wait * 2, settings.poll_interval), settings.poll_max)


def _gone(verdict: ImageVerdict, stored: StoredJob) -> bool:
    """Whether a stored job's answer says CI dropped it after its retention."""
    kept = RETENTION_DAYS.get(stored.kind, 30) * 86_400
    return verdict.code == NOT_FOUND and time.time() - stored.submitted_at > kept


def job_stage(
    plan: ScanPlan, http: HttpClient, store: Store, clock: Clock, on_retry: OnRetry | None
) -> JobStage | None:
    """The job stage of a scan whose `[scan] media` names more than images (a bucket's: a
    URL list is images only)."""
    config = plan.config
    if not plan.options.jobs or plan.urls:
        return None
    client = JobClient(
        http, config.cos, config.audit, config.jobs, plan.options,
        retry=plan.retry, clock=clock, on_retry=on_retry,
    )  # fmt: skip
    return JobStage(client, store, config.jobs, plan.target.scope)


async def job_worker(
    stage: JobStage,
    scan_id: int,
    queue: JobQueue,
    deliver: Deliver,
    refill: Callable[[], Awaitable[None]],
    stop: anyio.Event,
    user_of: Callable[[str], str],
    progress: Progress,
) -> None:
    """One job at a time, from the queue until it is empty and closed (or the stop);
    `refill` puts the media the queue left pending in the store, admitted again."""
    while (ref := await queue.take(refill)) is not None:
        if stop.is_set():
            continue  # not sent: pending for the next run
        progress.jobs_running += 1
        try:
            verdict = await stage.run(scan_id, ref, user_of(ref.key), stop)
        finally:
            progress.jobs_running -= 1
        if verdict is not None:
            await deliver(ref, verdict)
