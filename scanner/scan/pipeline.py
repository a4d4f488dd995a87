"""The scan pipeline: source -> batcher -> K auditors -> writer, in one task group per pass.

    source ──refs──▶ batcher ──batches──▶ auditors xK ──outcomes──▶ writer (SQLite)
       └──videos, voice, documents──▶ job workers (`scan.jobs`) ──outcomes──┘

The source feeds the scan's pending objects from the store (a resume, or a retry pass), then
lists on from the saved marker: each page and its next marker are recorded in one transaction
before its objects go downstream. Streams are bounded, so memory stays flat and a slow stage
slows the ones before it. An auditor hands its outcome to the writer and waits until it is
committed before taking another batch: at most K batches are ever billed but not recorded,
which bounds what a kill -9 can make us pay twice (K x batch size images).

`stop` (first signal) stops sending: listing ends (a listing request under way is cancelled),
batches not yet sent (queued, or waiting for the budget) are dropped unbilled and stay
pending, requests on the wire are awaited (bounded by the request timeout, never retried) and
written; cancelling the caller's scope (second signal) aborts those too. Every write is a
shielded transaction, so cancellation never leaves the store half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from scanner.audit.backend import AuditBackend
from scanner.audit.policy import AuditOptions, policy_still_holds
from scanner.errors import AbandonedError
from scanner.models import (
    AuditItem,
    ImageVerdict,
    KeyRange,
    ObjectRef,
    Page,
    Result,
    ScanStatus,
    Target,
)
from scanner.scan.batcher import make_batches
from scanner.scan.copies import Copies
from scanner.scan.decide import decide
from scanner.scan.jobs import JobQueue, JobStage, is_job, job_worker
from scanner.scan.plan import ScanPlan
from scanner.scan.progress import Progress
from scanner.scan.ranges import Probe, list_target
from scanner.sources.urls import fetch_url
from scanner.store import Store


class Source(Protocol):
    """Where a scan's objects come from: a bucket listing, or a URL list."""

    async def page(self, marker: str) -> Page: ...


@dataclass(frozen=True, slots=True)
class ScanDeps:
    """A pass's plan and the live objects it runs with."""

    plan: ScanPlan
    store: Store
    source: Source
    auditor: AuditBackend
    owner: str = "local"  # this scan's lease owner: what its claims carry
    since: float = 0.0  # the bucket's verdicts made before this are not taken (--force)
    split_point: Probe | None = None  # where an idle lister cuts a busy range (the bucket's)
    jobs: JobStage | None = None  # videos, voice notes and documents ([scan] media)

    @property
    def target(self) -> Target:
        return self.plan.target


@dataclass(frozen=True, slots=True, kw_only=True)
class PassOptions:
    batch_size: int
    workers: int
    batch_wait: float
    max_attempts: int
    max_images: int | None = None  # stop feeding after this many images this run
    list_pages: bool = True  # False: a retry pass over pending objects only


@dataclass
class Feed:
    """What the source of a pass sent downstream."""

    sent: int = 0
    capped: bool = False
    deferred: int = 0  # keys left pending because another live scan has them in flight


@dataclass(frozen=True, slots=True)
class _Outcome:
    refs: list[ObjectRef]
    verdicts: list[ImageVerdict]
    done: anyio.Event
    requests: int = 1  # 0: copies' shared verdicts, nothing was sent


@dataclass(frozen=True, slots=True)
class _Flow:
    """Where the source sends: refs to audit, and copies' outcomes straight to the writer."""

    refs_tx: MemoryObjectSendStream[ObjectRef]
    results_tx: MemoryObjectSendStream[_Outcome]
    copies: Copies
    queue: JobQueue | None = None  # media refs, when the scan audits more than images


async def _send_refs(refs: Sequence[ObjectRef], flow: _Flow, feed: Feed, limit: int | None) -> bool:
    """Send refs downstream until `limit`; False once the cap is reached. Videos, voice and
    documents go to the job queue (which never waits).

    Waits only when the stream is full: an await per object was a tenth of the scan's CPU.
    """
    refs_tx, queue = flow.refs_tx, flow.queue
    for ref in refs:
        if limit is not None and feed.sent >= limit:
            feed.capped = True
            return False
        if queue is not None and is_job(ref.key):
            if not queue.put(ref):
                flow.copies.forget(ref)  # pending in the store: the queue's refill takes it
            feed.sent += 1
            continue
        try:
            refs_tx.send_nowait(ref)
        except anyio.WouldBlock:
            await refs_tx.send(ref)
        feed.sent += 1
    return True


async def _admit(
    deps: ScanDeps,
    scan_id: int,
    refs: Sequence[ObjectRef],
    flow: _Flow,
    feed: Feed,
    progress: Progress,
) -> list[ObjectRef]:
    """What of `refs` must be sent: the store settles what is already known (copies of
    audited content, keys another scan just audited, keys it has in flight), then copies of
    content in flight in this pass wait for it (`Copies`)."""
    options, plan = deps.auditor.options, deps.plan
    got = await deps.store.admit(
        scan_id,
        deps.target,
        deps.owner,
        refs,
        since=deps.since,
        holds=lambda policy, ref: policy_still_holds(
            policy, options.fingerprint_for(ref.key, ref.size)
        ),
        dedupe=plan.config.scan.dedupe,
        stale_after=plan.config.scan.lease_stale_after,
        user=lambda ref: plan.user_of(ref.key),
    )
    for _, result, _ in got.shared:
        progress.audited += 1
        progress.shared += 1
        progress.flagged += result == Result.SENSITIVE
        progress.review += result == Result.SUSPICIOUS
    if got.shared:
        progress.changes.changed()
    feed.deferred += got.deferred
    progress.deferred += got.deferred
    send: list[ObjectRef] = []
    ready: list[tuple[ObjectRef, ImageVerdict]] = []
    for ref in got.send:
        route = flow.copies.route(ref)
        if route is None:
            send.append(ref)
        elif isinstance(route, ImageVerdict):
            ready.append((ref, route))
    if ready:
        await flow.results_tx.send(
            _Outcome([r for r, _ in ready], [v for _, v in ready], anyio.Event(), requests=0)
        )
    return send


async def _source(
    deps: ScanDeps,
    scan: ScanStatus,
    flow: _Flow,
    stop: anyio.Event,
    opts: PassOptions,
    feed: Feed,
    progress: Progress,
) -> None:
    try:
        async with flow.refs_tx, flow.results_tx:
            await _feed(deps, scan, flow, stop, opts, feed, progress)
    finally:
        if flow.queue is not None:
            flow.queue.close()


async def _feed(
    deps: ScanDeps, scan: ScanStatus, flow: _Flow, stop: anyio.Event, opts: PassOptions,
    feed: Feed, progress: Progress,
) -> None:  # fmt: skip
    if flow.queue is not None:  # a resume asks about its stored jobs before anything else
        jobs = await _admit(
            deps, scan.id, await deps.store.open_jobs(scan.id), flow, feed, progress
        )
        if not await _send_refs(jobs, flow, feed, opts.max_images):
            return
    async for pending in deps.store.iter_pending(scan.id):
        if stop.is_set():
            return
        refs = await _admit(deps, scan.id, pending, flow, feed, progress)
        if not await _send_refs(refs, flow, feed, opts.max_images):
            return
    if not opts.list_pages or scan.listing_done:
        return
    progress.enter("scanning")
    ranges = [r for r in await deps.store.ranges(scan.id) if not r.done]
    incremental = scan.mode == "incremental"
    priors = deps.store.priors if incremental else None

    async def take(page: Page, range_idx: int | None) -> bool:
        decisions = await decide(page.objects, deps.plan, priors)
        fresh = await deps.store.record_page(scan.id, decisions, page.next_marker, range_idx)
        progress.pages += 1
        progress.listed += len(page.objects)
        progress.skipped += len(page.objects) - len(fresh)
        fresh = await _admit(deps, scan.id, fresh, flow, feed, progress)
        return await _send_refs(fresh, flow, feed, opts.max_images)

    async def split(range_idx: int, mid: str) -> KeyRange | None:
        return await deps.store.split_range(scan.id, range_idx, mid)

    if await list_target(
        scan.marker,
        ranges,
        deps.source.page,
        take,
        split,
        stop,
        deps.plan.config.cos.list_concurrency,
        deps.split_point,
    ):  # the scan's size is known now
        progress.total = progress.listed_before + progress.listed


async def _audit(
    auditor: AuditBackend,
    batches_rx: ObjectReceiveStream[list[ObjectRef]],
    results_tx: ObjectSendStream[_Outcome],
    stop: anyio.Event,
    user_of: Callable[[str], str],
    urls: bool,
) -> None:
    async with batches_rx, results_tx:
        async for refs in batches_rx:
            if stop.is_set():
                continue  # not sent: its objects stay pending for the next run
            items = [
                AuditItem(ref.key, str(n), user_of(ref.key), fetch_url(ref) if urls else "")
                for n, ref in enumerate(refs)
            ]
            try:
                verdicts = await auditor.moderate(items, stop)
            except AbandonedError:
                continue  # given up after the stop, unbilled: pending for the next run
            outcome = _Outcome(refs, verdicts, anyio.Event())
            await results_tx.send(outcome)
            await outcome.done.wait()  # committed: only then take the next batch


async def _jobs(
    deps: ScanDeps, scan_id: int, flow: _Flow, tx: ObjectSendStream[_Outcome],
    stop: anyio.Event, progress: Progress,
) -> None:  # fmt: skip
    """A job worker (`scanner.scan.jobs`), its outcomes written as the auditors' are."""

    async def deliver(ref: ObjectRef, verdict: ImageVerdict) -> None:
        outcome = _Outcome([ref], [verdict], anyio.Event())
        await tx.send(outcome)
        await outcome.done.wait()

    async def refill() -> None:
        assert flow.queue is not None
        async for pending in deps.store.iter_pending(scan_id):
            left = [r for r in pending if is_job(r.key) and not flow.copies.holds(r)]
            left = [r for r in left if r.key not in flow.queue.routed]
            for ref in await _admit(deps, scan_id, left, flow, Feed(), progress):
                if not flow.queue.put(ref):
                    flow.copies.forget(ref)

    assert deps.jobs is not None
    assert flow.queue is not None
    async with tx:
        user_of = deps.plan.user_of
        await job_worker(deps.jobs, scan_id, flow.queue, deliver, refill, stop, user_of, progress)


def _policy_of(options: AuditOptions) -> Callable[[ObjectRef], str]:
    return lambda ref: options.fingerprint_for(ref.key, ref.size)


async def _write(
    deps: ScanDeps,
    scan_id: int,
    results_rx: MemoryObjectReceiveStream[_Outcome],
    opts: PassOptions,
    progress: Progress,
    copies: Copies,
) -> None:
    """Group-commit: everything waiting is written in one transaction, then acknowledged;
    then the copies that waited for what was just written get its verdict (`Copies`)."""
    async with results_rx:
        async for first in results_rx:
            group = [first]
            while True:
                try:
                    group.append(results_rx.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            pairs = [(r, v) for o in group for r, v in zip(o.refs, o.verdicts, strict=True)]
            await _record(deps, scan_id, pairs, sum(o.requests for o in group), opts)
            for outcome in group:
                progress.requests += outcome.requests
                progress.count(outcome.verdicts)
                outcome.done.set()
            progress.changes.changed()
            waited = [
                share
                for o in group
                if o.requests
                for r, v in zip(o.refs, o.verdicts, strict=True)
                for share in copies.settle(r, v)
            ]
            if waited:
                await _record(deps, scan_id, waited, 0, opts)
                progress.count([v for _, v in waited])
                progress.changes.changed()


async def _record(
    deps: ScanDeps,
    scan_id: int,
    pairs: Sequence[tuple[ObjectRef, ImageVerdict]],
    requests: int,
    opts: PassOptions,
) -> None:
    await deps.store.record_results(
        scan_id,
        deps.target,
        _policy_of(deps.auditor.options),
        pairs,
        user=lambda ref: deps.plan.user_of(ref.key),
        requests=requests,
        max_attempts=opts.max_attempts,
        owner=deps.owner,
    )


async def run_pass(
    deps: ScanDeps, scan: ScanStatus, opts: PassOptions, stop: anyio.Event, progress: Progress
) -> Feed:
    """One pass over the scan; says how many images it sent and whether it hit the cap."""
    feed = Feed()
    copies = Copies(_policy_of(deps.auditor.options), enabled=deps.plan.config.scan.dedupe)
    refs_tx, refs_rx = anyio.create_memory_object_stream[ObjectRef](opts.batch_size)
    batches_tx, batches_rx = anyio.create_memory_object_stream[list[ObjectRef]](0)
    results_tx, results_rx = anyio.create_memory_object_stream[_Outcome](opts.workers)
    async with anyio.create_task_group() as tg:
        queue = JobQueue() if deps.jobs is not None else None
        flow = _Flow(refs_tx, results_tx.clone(), copies, queue)
        tg.start_soon(_source, deps, scan, flow, stop, opts, feed, progress, name="source")
        tg.start_soon(
            make_batches, refs_rx, batches_tx, opts.batch_size, opts.batch_wait, name="batcher"
        )
        with batches_rx, results_tx:
            for n in range(opts.workers):
                tg.start_soon(
                    _audit,
                    deps.auditor,
                    batches_rx.clone(),
                    results_tx.clone(),
                    stop,
                    deps.plan.user_of,
                    deps.plan.urls,
                    name=f"auditor-{n}",
                )
            for _n in range(deps.jobs.settings.concurrency if deps.jobs else 0):
                tg.start_soon(_jobs, deps, scan.id, flow, results_tx.clone(), stop, progress)
        tg.start_soon(_write, deps, scan.id, results_rx, opts, progress, copies, name="writer")
    return feed
