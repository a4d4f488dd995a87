"""Running a scan of the configured target: lease, resume, passes, final state.

`scan_target` takes the target's lease (refusing if a live process holds it, taking over a
stale one), resumes the target's unfinished scan or starts one, runs the pipeline's passes
(the main pass, then retry passes for retryable per-image failures) and records how it ended:
done, paused (--max-images), interrupted (signal) or failed (an error; resumable). A target
whose last scan is done is left alone: running it again changes nothing and bills nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import anyio

from scanner.audit.backend import AuditBackend, limits, make_backend
from scanner.audit.client import audit_options
from scanner.clock import Clock, MonotonicClock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister
from scanner.errors import ConfigError, RemoteError, ScanBusyError
from scanner.filter import ObjectFilter, user_of
from scanner.limiter import AuditBudget
from scanner.models import ScanStatus, Target, unsharded
from scanner.pipeline import PassOptions, Progress, ScanDeps, run_pass
from scanner.quota import Window, remaining_images, span, until_utc_midnight
from scanner.retry import RetryPolicy
from scanner.sources.inventory import InventorySource, open_inventory
from scanner.sources.shard import ShardSource, shard_quota
from scanner.sources.urls import UrlFilter, UrlList, url_target
from scanner.store import Store
from scanner.workers import WorkerPool, WorkerSetup, default_workers

log = logging.getLogger("scanner")


@dataclass(frozen=True, slots=True)
class ScanResult:
    status: ScanStatus
    outcome: str  # done | nothing | paused | interrupted | failed
    note: str = ""  # why a scan paused, and until when (daily cap, window)


def target_of(config: Config) -> Target:
    return Target(config.cos.bucket, config.cos.region, config.cos.prefix)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_dead(host: str, pid: int) -> bool:
    """Whether a lease holder is known dead (same host, no such process)."""
    return host == socket.gethostname() and not _pid_alive(pid)


def _first_error(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__


async def _heartbeat(store: Store, target: Target, owner: str, every: float) -> None:
    while True:
        await anyio.sleep(every)
        if not await store.heartbeat(target, owner):
            raise ScanBusyError(f"lost the lease on {target.id} to another process")


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
        run.progress.phase = "auditing" if number == 1 else f"retry pass {number}"
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
            run.progress.phase = "waiting for another scan"
            with anyio.move_on_after(2.0):
                await run.stop.wait()
            continue  # not an attempt: nothing of ours failed
        with anyio.move_on_after(min(30.0, 2.0**number)):
            await run.stop.wait()
        number += 1
    await store.fail_pending(scan.id, "RetriesExhausted", "retryable failures on every attempt")
    await store.spent_to_failures(scan.id, run.deps.target, run.deps.policy, "RetriesExhausted")
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
                scan.id, state, None if cancelled else _first_error(exc)
            )
        raise


INVENTORY = "inventory:"  # a scan's source digest when it reads an Inventory (+ the manifest's MD5)


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


def opening(target: Target, latest: ScanStatus | None, mode: str, force: bool, digest: str) -> str:
    """What a scan does first (`scan` and its `--dry-run` alike): "resume" the target's
    unfinished scan, "abandon" it ("--force", or an Inventory superseded by a newer one) and
    start a new one, do "nothing", or start a "new" scan.

    A plain full scan of a target whose last scan is done does nothing (it would only bill
    again); `--incremental`, `--retry-failed`, `--force` and a new Inventory start a new scan.
    Resuming from another input than the scan began with is refused (ConfigError).
    """
    inventory = digest.startswith(INVENTORY)
    if latest is not None and latest.state != "done":
        superseded = inventory and latest.source_digest != digest
        if not force and not superseded:
            _same_source(target, latest, digest)
            return "resume"
        return "abandon"
    if latest is not None and mode == "full" and not force:
        if not inventory or latest.source_digest == digest:
            return "nothing"  # a new Inventory is new input: it makes a new scan
    return "new"


async def _open_scan(
    store: Store, target: Target, policy: str, mode: str, force: bool, digest: str = ""
) -> ScanStatus | None:
    """Resume the target's unfinished scan, or start one (`opening`); None when there is
    nothing to do. An abandoned scan's state becomes `abandoned`."""
    latest = await store.latest_scan(target)
    action = opening(target, latest, mode, force, digest)
    if action == "nothing":
        return None
    if latest is not None and action == "resume":
        return await store.resume_scan(latest.id, policy)
    if latest is not None and action == "abandon":
        superseded = not force
        why = "superseded by a newer Inventory" if superseded else "abandoned by scan --force"
        await store.finish_scan(latest.id, "abandoned", why)
        log.info("scan %d %s: a new scan starts", latest.id, why)
    if latest is None and mode == "incremental" and not await store.has_outcomes(target):
        mode = "full"  # nothing to compare with yet (no scan of the bucket covered it)
    scan = await store.start_scan(target, policy, mode, reuse=not force, source_digest=digest)
    if mode == "retry-failed":
        await store.seed_failures(scan.id, target)
        scan = await store.scan(scan.id)
    return scan


async def scan_target(
    config: Config,
    stop: anyio.Event,
    progress: Progress,
    *,
    max_images: int | None = None,
    mode: str = "full",
    force: bool = False,
    clock: Clock | None = None,
    on_retry: Callable[[RemoteError, int, float], None] | None = None,
    urls: UrlList | None = None,
    inventory: str | None = None,
    window: Window | None = None,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
) -> ScanResult:
    """Scan (or resume) the configured target (or the URL list `urls`; or the bucket from the
    Inventory whose manifest is `inventory`) until done, stopped, capped or failed."""
    target = url_target(urls.path) if urls is not None else target_of(config)
    if shard is not None:
        target = replace(target, shard=shard)
        config = shard_quota(config, shard[1])
    assert config.credentials is not None
    policy = audit_options(config.audit).fingerprint()
    clock = clock or MonotonicClock()
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    concurrency, _ = limits(config)
    async with (
        await Store.open(config.store.path) as store,
        HttpClient(config.credentials, connections=concurrency * 2 + 4) as http,
    ):
        await store.acquire_lease(
            target,
            owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            stale_after=config.scan.lease_stale_after,
            is_dead=is_dead,
        )
        source: UrlList | InventorySource | None = urls
        try:
            await _own_store(store, target)
            digest = urls.digest if urls is not None else ""
            if inventory is not None:
                source = await open_inventory(config, http, inventory, clock, on_retry)
                digest = INVENTORY + source.manifest.digest
            scan = await _open_scan(store, target, policy, mode, force, digest)
            if scan is not None:
                log.info(
                    "scan %d of %s (%s) %s",
                    scan.id,
                    target.id,
                    scan.mode,
                    "resumed" if scan.listed else "started",
                    extra={
                        "event": "scan_start",
                        "scan_id": scan.id,
                        "target": target.id,
                        "mode": scan.mode,
                        "resumed": bool(scan.listed),
                    },
                )
            if scan is None:
                latest = await store.latest_scan(target)
                assert latest is not None
                return ScanResult(latest, "nothing")
            run = _Inputs(
                store, http, target, policy, owner, clock, on_retry, source, window, workers
            )
            return await _scan_with_clients(config, run, scan, stop, progress, max_images)
        finally:
            if source is not None:
                source.close()
            with anyio.CancelScope(shield=True):
                await store.release_claims(owner)
                await store.release_lease(target, owner)


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
class _Inputs:
    store: Store
    http: HttpClient
    target: Target
    policy: str
    owner: str
    clock: Clock
    on_retry: Callable[[RemoteError, int, float], None] | None
    source: UrlList | InventorySource | None  # a URL list or an Inventory; None: list the bucket
    window: Window | None = None  # --window: audit only inside it
    workers: int | None = None  # --workers: audit processes (None: enough for the budget)


async def _scan_with_clients(
    config: Config,
    inputs: _Inputs,
    scan: ScanStatus,
    stop: anyio.Event,
    progress: Progress,
    max_images: int | None,
) -> ScanResult:
    assert config.credentials is not None
    store, target, clock, on_retry = inputs.store, inputs.target, inputs.clock, inputs.on_retry
    retry = RetryPolicy.from_settings(config.retry)
    concurrency, qps = limits(config)
    budget = AuditBudget(concurrency, qps, clock)
    progress.budget = budget
    progress.listed_before = scan.listed
    progress.done_before = scan.audited + scan.failed + scan.skipped
    progress.total = (
        scan.listed if scan.listing_done else (await store.previous_listed(target.id, scan.id))
    )
    if isinstance(inputs.source, InventorySource) and not scan.listing_done:
        progress.total = inputs.source.total or progress.total
    opts = PassOptions(
        batch_size=1 if config.audit.service == "ims" else config.audit.batch_size,
        workers=concurrency,
        batch_wait=config.scan.batch_wait,
        max_attempts=config.scan.max_attempts,
        max_images=max_images,
    )
    http = inputs.http
    lister = inputs.source or Lister(http, config.cos, retry=retry, clock=clock, on_retry=on_retry)
    count = inputs.workers or default_workers(qps, concurrency, opts.batch_size)
    async with AsyncExitStack() as stack:
        remote = None
        if count > 1 and config.audit.service == "ci":
            setup = WorkerSetup(
                config.credentials,
                config.cos,
                config.audit,
                audit_options(config.audit, config.freeze),
            )
            remote = (await stack.enter_async_context(WorkerPool(setup, count))).attempt
            log.info("audit requests are made by %d worker processes", count)
        elif inputs.workers and inputs.workers > 1:
            log.info("--workers: IMS requests (one image each) are made in the scan's process")
        auditor = make_backend(
            config, http, retry=retry, clock=clock, budget=budget, on_retry=on_retry, remote=remote
        )
        return await _run(config, inputs, scan, stop, progress, opts, lister, auditor)


async def _run(
    config: Config,
    inputs: _Inputs,
    scan: ScanStatus,
    stop: anyio.Event,
    progress: Progress,
    opts: PassOptions,
    lister: Lister | UrlList | InventorySource,
    auditor: AuditBackend,
) -> ScanResult:
    store, target = inputs.store, inputs.target
    urls = inputs.source if isinstance(inputs.source, UrlList) else None
    deps = ScanDeps(
        store,
        lister if target.shard is None else ShardSource(lister, *target.shard),
        auditor,
        target,
        inputs.policy,
        UrlFilter() if urls else ObjectFilter.from_settings(config.scan, config.audit),
        incremental=scan.mode == "incremental",
        user_of=user_of(config.scan),
        owner=inputs.owner,
        since=scan.reuse_since,
        dedupe=config.scan.dedupe,
        stale_after=config.scan.lease_stale_after,
        urls=urls is not None,
        list_concurrency=config.cos.list_concurrency,
        split_point=lister.split_point if isinstance(lister, Lister) else None,
    )
    if isinstance(lister, Lister) and not scan.listing_done:
        await _split(store, lister, scan, config.cos.list_concurrency)
    halt = anyio.Event()  # the user's stop, or the end of the window
    run = _Run(deps, opts, halt, progress)
    held = await _hold(config, inputs, run, scan, stop)
    if held is not None:
        return held
    async with anyio.create_task_group() as tg:
        every = max(1.0, config.scan.lease_stale_after / 4)
        tg.start_soon(_heartbeat, store, target, inputs.owner, every, name="heartbeat")
        tg.start_soon(_relay, stop, halt, name="stop")
        if inputs.window is not None:
            tg.start_soon(_close_window, inputs.window, run, name="window")
        result = await _guarded(run, scan)
        tg.cancel_scope.cancel()
    return result


async def _relay(stop: anyio.Event, halt: anyio.Event) -> None:
    await stop.wait()
    halt.set()


async def _close_window(window: Window, run: _Run) -> None:
    await anyio.sleep(window.closes_in(datetime.now().astimezone()))
    opens = window.opens_in(datetime.now().astimezone() + timedelta(seconds=1)) + 1
    run.paused_by = f"paused at the end of the window {window.text}; it opens in {span(opens)}"
    log.info("window %s closed: no more batches are sent", window.text)
    run.stop.set()


async def _hold(
    config: Config, inputs: _Inputs, run: _Run, scan: ScanStatus, stop: anyio.Event
) -> ScanResult | None:
    """Wait for the window to open; apply the daily cap. A result when the scan cannot go on."""
    store = inputs.store
    if inputs.window is not None:
        wait = inputs.window.opens_in(datetime.now().astimezone())
        if wait > 0:
            log.info("outside the window %s: waiting %s", inputs.window.text, span(wait))
            run.progress.phase = f"waiting for the window {inputs.window.text}"
            with anyio.move_on_after(wait):
                await stop.wait()
            if stop.is_set():
                return ScanResult(await store.finish_scan(scan.id, "interrupted"), "interrupted")
    cap = config.scan.daily_cap
    if not cap:
        return None
    now = datetime.now(UTC)
    billed = await store.billed_on(now.strftime("%Y-%m-%d"))
    scenes = config.audit.scenes_per_image
    left = remaining_images(cap, billed, scenes)
    note = (
        f"paused at the daily cap of {cap:,} units ({billed * (scenes or 1):,} billed today, "
        f"UTC); the cap resets in {span(until_utc_midnight(now))} (00:00 UTC)"
    )
    if left == 0:
        return ScanResult(await store.finish_scan(scan.id, "paused"), "paused", note)
    if run.opts.max_images is None or left < run.opts.max_images:
        run.opts = replace(run.opts, max_images=left)
        run.cap_note = note
    return None
