"""Running a scan of the configured target: lease, resume, passes, final state.

`scan_target` takes the target's lease (refusing if a live process holds it, taking over a
stale one), resumes the target's unfinished scan or starts one, runs the pipeline's passes
(the main pass, then retry passes for retryable per-image failures) and records how it ended:
done, paused (--max-images), interrupted (signal) or failed (an error; resumable). A target
whose last scan is done is left alone: running it again changes nothing and bills nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace

import anyio

from scanner.audit.backend import AuditBackend, make_backend
from scanner.clock import Clock, MonotonicClock
from scanner.config.window import Window
from scanner.cos.client import HttpClient
from scanner.cos.credentials import provider_of
from scanner.cos.listing import Lister
from scanner.errors import ConfigError, OnRetry, first_error
from scanner.lease import lease
from scanner.models import ScanStatus, Target, unsharded
from scanner.scan.jobs import job_stage
from scanner.scan.pipeline import PassOptions, ScanDeps, run_pass
from scanner.scan.plan import Mode, ScanPlan
from scanner.scan.progress import Progress
from scanner.scan.quota import close_window, daily_allowance, wait_for_window
from scanner.scan.workers import WorkerPool, WorkerSetup
from scanner.sources.inputs import INVENTORY, Opened, open_input
from scanner.sources.inventory import InventorySource
from scanner.store import Store

log = logging.getLogger("scanner")


@dataclass(frozen=True, slots=True)
class ScanResult:
    status: ScanStatus
    outcome: str  # done | nothing | paused | interrupted | failed
    note: str = ""  # why a scan paused, and until when (daily cap, window)


@dataclass
class _Run:
    deps: ScanDeps
    opts: PassOptions
    stop: anyio.Event
    progress: Progress
    sent: int = 0
    notes: Counter[str] = field(default_factory=Counter)
    paused_by: str = ""  # the window closed: why the stop was set
    cap_note: str = ""  # the daily cap is the run's image limit: what to say when it is hit


async def _passes(run: _Run, scan: ScanStatus) -> ScanResult:
    store = run.deps.store
    number = 1
    while number <= run.opts.max_attempts:
        remaining = None if run.opts.max_images is None else run.opts.max_images - run.sent
        opts = replace(run.opts, max_images=remaining, list_pages=not scan.listing_done)
        run.progress.enter("auditing" if number == 1 else f"retry pass {number}")
        feed = await run_pass(run.deps, scan, opts, run.stop, run.progress)
        run.sent += feed.sent
        scan = await store.scan(scan.id)
        if scan.pending == 0 and scan.listing_done:  # also when a signal came in the last drain
            return ScanResult(await _done(run, scan), "done")
        if run.stop.is_set() and run.paused_by:
            return ScanResult(await store.finish_scan(scan.id, "paused"), "paused", run.paused_by)
        if run.stop.is_set():
            return ScanResult(await store.finish_scan(scan.id, "interrupted"), "interrupted")
        if feed.capped:
            return ScanResult(await store.finish_scan(scan.id, "paused"), "paused", run.cap_note)
        if feed.deferred:  # another scan has some of these keys in flight: wait for its answers
            log.info("%d keys are in flight in another scan of this bucket: waiting", feed.deferred)
            run.progress.enter("waiting for another scan")
            with anyio.move_on_after(2.0):
                await run.stop.wait()
            continue  # not an attempt: nothing of ours failed
        with anyio.move_on_after(min(30.0, 2.0**number)):
            await run.stop.wait()
        number += 1
    await store.fail_pending(scan.id, "RetriesExhausted", "retryable failures on every attempt")
    await store.spent_to_failures(
        scan.id, run.deps.target, run.deps.plan.policy, "RetriesExhausted"
    )
    return ScanResult(await _done(run, scan), "done")


async def _done(run: _Run, scan: ScanStatus) -> ScanStatus:
    """Finish the scan; a complete listing also marks the keys that vanished as deleted."""
    if scan.mode != "retry-failed":
        await run.deps.store.mark_deleted(scan.id, run.deps.target)
    return await run.deps.store.finish_scan(scan.id, "done")


async def _guarded(run: _Run, scan: ScanStatus) -> ScanResult:
    """Run the passes; whatever happens, the scan's row says how it ended."""
    try:
        return await _passes(run, scan)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            state = "interrupted" if cancelled else "failed"
            await run.deps.store.finish_scan(
                scan.id, state, None if cancelled else first_error(exc)
            )
        raise


def _same_source(target: Target, latest: ScanStatus, digest: str) -> None:
    """Refuse to resume a scan from another input than the one it began with."""
    if latest.source_digest == digest:
        return
    if latest.source_digest.startswith(INVENTORY):
        raise ConfigError(
            f"scan {latest.id} of {target.id} reads an Inventory: finish it with --inventory "
            "(the same manifest or a newer one), or start over with --force"
        )
    raise ConfigError(
        f"the URL list {target.urls} changed since scan {latest.id} began (SHA-256 "
        f"{latest.source_digest[:12]}... is now {digest[:12]}...): put the list "
        "back to finish that scan, or start over with --force"
    )


def opening(
    target: Target,
    latest: ScanStatus | None,
    unfinished: ScanStatus | None,
    mode: Mode,
    digest: str,
) -> str:
    """What a scan does first (`scan` and its `--dry-run` alike), given the target's newest
    scan and its newest unfinished one: "resume" that unfinished scan, "abandon" it and
    start a new one, do "nothing", or start a "new" scan.

    A plain `scan` goes on with whatever the target left unfinished; `--incremental` and
    `--retry-failed` go on only with an unfinished scan of their own kind from the same input,
    and otherwise start their own, leaving the other as it is (a paused `--force` or backlog,
    a failed Inventory scan: a plain `scan` resumes it, `scan --abandon` drops it), so a
    nightly never becomes a re-audit and is never blocked; `--force` and a newer Inventory
    abandon it. A plain scan of a target whose newest scan is done does nothing (it would
    only bill again) unless its input changed (a newer Inventory, lines appended to a URL
    list: the new scan audits what has no valid verdict); after an abandoned one it starts
    anew. A plain scan resuming from
    another input than its scan began with is refused (ConfigError: how to finish it).
    """
    inventory = digest.startswith(INVENTORY)
    if unfinished is not None:
        superseded = inventory and unfinished.source_digest != digest
        if mode.force or (superseded and unfinished.mode == mode.stored):
            return "abandon"
        if mode is Mode.FULL:
            _same_source(target, unfinished, digest)
            return "resume"
        if unfinished.mode == mode.stored and unfinished.source_digest == digest:
            return "resume"
        return "new"  # another kind of scan, or from another input: it stays, resumable
    if latest is not None and latest.state == "done" and mode is Mode.FULL:
        if latest.source_digest == digest or not (inventory or target.urls):
            return "nothing"  # a new Inventory, a grown URL list: new input, a new scan
    return "new"


async def _open_scan(store: Store, plan: ScanPlan, digest: str) -> ScanStatus | None:
    """Resume the target's unfinished scan, or start one (`opening`); None when there is
    nothing to do. An abandoned scan's state becomes `abandoned`."""
    target, mode = plan.target, plan.mode
    latest = await store.latest_scan(target)
    waiting = await store.unfinished_scans(target)
    unfinished = waiting[0] if waiting else None
    action = opening(target, latest, unfinished, mode, digest)
    if action == "nothing":
        return None
    if unfinished is not None and action == "resume":
        return await store.resume_scan(unfinished.id, plan.policy)
    if unfinished is not None and action == "abandon":
        why = "abandoned by scan --force" if mode.force else "superseded by a newer Inventory"
        for scan in waiting if mode.force else [unfinished]:
            await store.finish_scan(scan.id, "abandoned", why)
            log.info("scan %d %s: a new scan starts", scan.id, why)
    elif unfinished is not None:
        log.info(
            "scan %d (%s, %s) stays unfinished: a plain `scan` resumes it, `scan --abandon` "
            "drops it; this %s scan starts on its own",
            unfinished.id, _kind(unfinished), unfinished.state, mode.value,
        )  # fmt: skip
    stored = mode.stored
    if latest is None and mode is Mode.INCREMENTAL and not await store.has_outcomes(target):
        stored = "full"  # nothing to compare with yet (no scan of the bucket covered it)
    scan = await store.start_scan(
        target, plan.policy, stored, reuse=not mode.force, source_digest=digest
    )
    if mode is Mode.RETRY_FAILED:
        await store.seed_failures(scan.id, target)
        scan = await store.scan(scan.id)
    return scan


def _kind(scan: ScanStatus) -> str:
    """A scan's mode as the command line named it (a forced scan is stored as full)."""
    return "force" if scan.mode == "full" and scan.reuse_since else scan.mode


async def abandon_unfinished(plan: ScanPlan) -> list[tuple[ScanStatus, int]]:
    """`scan --abandon`: the target's unfinished scans are marked abandoned (under the
    target's lease); each with how many of its objects were still pending. Their verdicts
    stay (they belong to the objects)."""
    config, target = plan.config, plan.target
    async with (
        await Store.open(config.store.path) as store,
        lease(store, target, config.scan.lease_stale_after),
    ):
        dropped = []
        for scan in await store.unfinished_scans(target):
            pending = await store.pending_count(scan.id)
            await store.finish_scan(scan.id, "abandoned", "abandoned by scan --abandon")
            dropped.append((scan, pending))
        return dropped


async def scan_target(
    plan: ScanPlan,
    stop: anyio.Event,
    progress: Progress,
    *,
    clock: Clock | None = None,
    on_retry: OnRetry | None = None,
) -> ScanResult:
    """Scan (or resume) the plan's target from its input until done, stopped, capped or
    failed."""
    config, target = plan.config, plan.target
    clock = clock or MonotonicClock()
    async with (
        await Store.open(config.store.path) as store,
        HttpClient(provider_of(config), connections=plan.profile.concurrency * 2 + 4) as http,
        lease(store, target, config.scan.lease_stale_after) as owner,
    ):
        await _own_store(store, target)
        opened = await open_input(
            plan.request.input, config, http, retry=plan.retry, clock=clock,
            shard=target.shard, on_retry=on_retry,
        )  # fmt: skip
        try:
            scan = await _open_scan(store, plan, opened.digest)
            if scan is None:
                latest = await store.latest_scan(target)
                assert latest is not None
                return ScanResult(latest, "nothing")
            log.info(
                "scan %d of %s (%s) %s", scan.id, target.id, scan.mode,
                "resumed" if scan.listed else "started",
                extra={"event": "scan_start", "scan_id": scan.id, "target": target.id,
                       "mode": scan.mode, "resumed": bool(scan.listed)},
            )  # fmt: skip
            live = _Live(plan, store, http, owner, clock, on_retry, opened)
            return await _with_auditor(live, scan, stop, progress)
        finally:
            opened.close()


async def _own_store(store: Store, target: Target) -> None:
    """A shard keeps its own store: refuse one that holds the target whole or another shard."""
    whole = unsharded(target.id)
    others = [t for t in await store.targets() if unsharded(t) == whole and t != target.id]
    if others:
        raise ConfigError(
            f"the store {store.path} already holds scans of {others[0]}: each shard (and the "
            "whole target) needs a store file of its own (--store)"
        )


async def _split(store: Store, lister: Lister, scan: ScanStatus, parts: int) -> None:
    """[cos] list_concurrency: a new scan's listing cut into key ranges listed at once."""
    if parts < 2 or scan.listed or scan.marker or await store.ranges(scan.id):
        return
    ranges = await store.set_ranges(scan.id, await lister.split(parts))
    if len(ranges) > 1:
        log.info("scan %d lists %d key ranges at once", scan.id, len(ranges))


@dataclass(frozen=True, slots=True)
class _Live:
    """The plan and what a running scan holds open: the store, the HTTP client, the lease,
    the clock and the opened input."""

    plan: ScanPlan
    store: Store
    http: HttpClient
    owner: str
    clock: Clock
    on_retry: OnRetry | None
    opened: Opened


async def _with_auditor(
    live: _Live, scan: ScanStatus, stop: anyio.Event, progress: Progress
) -> ScanResult:
    """The audit backend (in worker processes when the service's profile allows them)."""
    plan, store, target = live.plan, live.store, live.plan.target
    budget = plan.budget(live.clock)
    progress.budget = budget
    progress.listed_before = scan.listed
    progress.done_before = scan.audited + scan.failed + scan.skipped
    progress.total = (
        scan.listed if scan.listing_done else (await store.previous_listed(target.id, scan.id))
    )
    reader = live.opened.reader
    if isinstance(reader, InventorySource) and not scan.listing_done:
        progress.total = reader.total or progress.total
    count = plan.worker_processes()
    async with AsyncExitStack() as stack:
        remote = None
        if count > 1:
            config = plan.config
            setup = WorkerSetup(config.credentials, config.identity, config.cos, config.audit,
                                plan.options)  # fmt: skip
            remote = (await stack.enter_async_context(WorkerPool(setup, count))).attempt
            log.info("audit requests are made by %d worker processes", count)
        elif plan.request.workers and plan.request.workers > 1:
            log.info("--workers: IMS requests (one image each) are made in the scan's process")
        auditor = make_backend(
            plan.config, plan.profile, plan.options, live.http, retry=plan.retry, clock=live.clock,
            budget=budget, on_retry=live.on_retry, remote=remote,
        )  # fmt: skip
        return await _run(live, scan, stop, progress, auditor)


async def _run(
    live: _Live, scan: ScanStatus, stop: anyio.Event, progress: Progress, auditor: AuditBackend
) -> ScanResult:
    plan, store = live.plan, live.store
    reader = live.opened.reader
    lister = reader if isinstance(reader, Lister) else None
    deps = ScanDeps(
        plan, store, live.opened, auditor, owner=live.owner, since=scan.reuse_since,
        split_point=lister.split_point if lister is not None else None,
        jobs=job_stage(plan, live.http, store, live.clock, live.on_retry),
    )  # fmt: skip
    if lister is not None and not scan.listing_done:
        await _split(store, lister, scan, plan.config.cos.list_concurrency)
    opts = PassOptions(
        batch_size=plan.profile.batch_size,
        workers=plan.profile.concurrency,
        batch_wait=plan.config.scan.batch_wait,
        max_attempts=plan.config.scan.max_attempts,
        max_images=plan.request.max_images,
    )
    halt = anyio.Event()  # the user's stop, or the end of the window
    run = _Run(deps, opts, halt, progress)
    held = await _hold(live, run, scan, stop)
    if held is not None:
        return held
    async with anyio.create_task_group() as tg:
        tg.start_soon(_relay, stop, halt, name="stop")
        if plan.request.window is not None:
            tg.start_soon(_close_window, plan.request.window, live.clock, run, name="window")
        result = await _guarded(run, scan)
        tg.cancel_scope.cancel()
    return result


async def _relay(stop: anyio.Event, halt: anyio.Event) -> None:
    await stop.wait()
    halt.set()


async def _close_window(window: Window, clock: Clock, run: _Run) -> None:
    run.paused_by = await close_window(window, clock)
    log.info("window %s closed: no more batches are sent", window.text)
    run.stop.set()


async def _hold(live: _Live, run: _Run, scan: ScanStatus, stop: anyio.Event) -> ScanResult | None:
    """Wait for the window to open; apply the daily cap. A result when the scan cannot go on."""
    plan, store = live.plan, live.store
    window = plan.request.window
    if window is not None and window.opens_in(live.clock.wall()) > 0:
        log.info("outside the window %s: waiting", window.text)
        run.progress.enter(f"waiting for the window {window.text}")
        await wait_for_window(window, live.clock, stop)
        if stop.is_set():
            return ScanResult(await store.finish_scan(scan.id, "interrupted"), "interrupted")
    cap = plan.config.scan.daily_cap
    if not cap:
        return None
    left, note = await daily_allowance(store, cap, plan.config.audit.scenes_per_image, live.clock)
    if left == 0:
        return ScanResult(await store.finish_scan(scan.id, "paused"), "paused", note)
    if run.opts.max_images is None or left < run.opts.max_images:
        run.opts = replace(run.opts, max_images=left)
        run.cap_note = note
    return None
