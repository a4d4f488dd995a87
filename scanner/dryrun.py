"""`scan --dry-run`: exactly what a scan run would send and bill, from a listing and the store.

It takes the decisions the scan itself would take, in the same order: an unfinished scan is
resumed (its pending objects, then listing on from its saved marker; what it already did is
not counted again), a finished one is left alone unless a new scan is asked for, a nightly
rescan skips what still holds (`pipeline.unchanged`), `--retry-failed` takes the store's
failures, the filter skips what it would skip and `--max-images` caps what is sent. Nothing is
written and nothing is billed. What the service will refuse per image cannot be foreseen.

Billed units are images x scenes (reference 6): the scenes come from `detect_type` or
`billed_scenes`; a BizType policy's scenes live in the console, so without either the estimate
says so and gives the range (1 to 7 scenes per image). Images over 5 MB audited with
LargeImageDetect also pay the compression fee.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

from scanner.audit.client import audit_options
from scanner.audit.codec import LARGE_IMAGE_BYTES, AuditOptions, policy_still_holds
from scanner.clock import MonotonicClock
from scanner.config import MAX_SCENES, Config
from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister
from scanner.filter import ObjectFilter
from scanner.models import ObjectRef, Page, ScanStatus, Target, content_key
from scanner.pipeline import Progress, Source, unchanged
from scanner.retry import RetryPolicy
from scanner.runner import INVENTORY, opening, target_of
from scanner.sources.inventory import InventorySource, open_inventory
from scanner.sources.shard import ShardSource, shard_quota
from scanner.sources.urls import UrlFilter, UrlList, url_target
from scanner.store import Store
from scanner.store.seen import SeenSet


@dataclass
class Estimate:
    """What a scan run would send: images (and their bytes), skips by reason, and why."""

    mode: str
    target: str = ""
    objects: int = 0
    images: int = 0
    bytes: int = 0
    large_images: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    pages: int = 0
    resumes: int | None = None  # the unfinished scan a run would resume
    already_done: int = 0  # objects that scan already finished (not sent again)
    nothing: bool = False  # the target's last scan is done: a plain scan does nothing
    capped: bool = False  # --max-images stops the run before the end
    copies: int = 0  # images not sent: their content is audited once ([scan] dedupe)
    reused: int = 0  # images not sent: their own verdict (from any scan of the bucket) stands

    def billed_units(self, scenes: int | None) -> int | None:
        return None if scenes is None else self.images * scenes

    def duration(self, batch_size: int, qps: float) -> float:
        return math.ceil(self.images / batch_size) / qps if self.images else 0.0

    def price(self, config: Config) -> float | None:
        """The money, or None when a price (or the scene count) is unknown."""
        units = self.billed_units(config.audit.scenes_per_image)
        if units is None or not config.audit.unit_price:
            return None
        if self.large_images and not config.audit.large_image_price:
            return None
        return units * config.audit.unit_price + self.large_images * config.audit.large_image_price

    def as_json(self, config: Config) -> dict[str, Any]:
        scenes = config.audit.scenes_per_image
        price = self.price(config)
        return {
            "target": self.target or target_of(config).id,
            "mode": self.mode,
            "resumes_scan": self.resumes,
            "nothing_to_do": self.nothing,
            "objects": self.objects,
            "images": self.images,
            "bytes": self.bytes,
            "scenes_per_image": scenes,
            "billed_units": self.billed_units(scenes),
            "billed_units_range": [self.images, self.images * MAX_SCENES]
            if scenes is None
            else [self.images * scenes] * 2,
            "large_image_units": self.large_images,
            "copies_not_billed": self.copies,
            "verdicts_reused": self.reused,
            "saved_units": None if scenes is None else self.copies * scenes,
            "price": None if price is None else round(price, 6),
            "skipped": dict(self.skipped.most_common()),
            "already_done": self.already_done,
            "capped_at_max_images": self.capped,
            "duration_s": round(self.duration(*_pace(config)), 3),
        }


def _pace(config: Config) -> tuple[int, float]:
    """(images per request, requests per second) of the configured service."""
    if config.audit.service == "ims":
        return 1, config.ims.qps
    return config.audit.batch_size, config.audit.qps


@dataclass
class _Counter:
    est: Estimate
    options: AuditOptions
    max_images: int | None
    target: Target
    seen: SeenSet | None = None  # with [scan] dedupe: the contents this run would send
    store: Store | None = None
    since: float = 0.0  # the store's verdicts before this are not taken (a --force scan)
    urls: UrlList | None = None  # a URL list instead of the bucket

    async def send(self, refs: Sequence[ObjectRef]) -> bool:
        """Count `refs` as sent, less the copies the scan would not pay for (content audited
        before, or sent earlier in this run); False once `--max-images` is reached."""
        refs = await self._distinct(refs)
        for ref in refs:
            if self.max_images is not None and self.est.images >= self.max_images:
                self.est.capped = True
                return False
            self.est.images += 1
            self.est.bytes += ref.size
            self.est.large_images += self.options.large_image_detect and (
                ref.size > LARGE_IMAGE_BYTES
            )
        return True

    async def _distinct(self, refs: Sequence[ObjectRef]) -> list[ObjectRef]:
        """`refs` less what the scan would take from the store or share within the run."""
        options = self.options
        mine: set[str] = set()
        known: set[str] = set()
        if self.store is not None:
            mine, known = await self.store.reusable(
                self.target,
                refs,
                lambda policy, ref: policy_still_holds(
                    policy, options.fingerprint_for(ref.key, ref.size)
                ),
                since=self.since,
                dedupe=self.seen is not None,
            )
        self.est.reused += len(mine)
        keyed = [
            (ref, content_key(ref.etag, ref.size) if self.seen is not None else None)
            for ref in refs
            if ref.key not in known and ref.key not in mine
        ]
        firsts = (
            self.seen.add(
                [f"{c}|{options.fingerprint_for(r.key, r.size)}" for r, c in keyed if c is not None]
            )
            if self.seen is not None
            else []
        )
        out: list[ObjectRef] = []
        new = iter(firsts)
        for ref, content in keyed:
            if content is None or next(new):
                out.append(ref)
        self.est.copies += len(refs) - len(mine) - len(out)
        return out


async def _pages(source: Source, marker: str) -> AsyncIterator[Page]:
    while True:
        page = await source.page(marker)
        yield page
        if page.next_marker is None:
            return
        marker = page.next_marker


async def _latest(path: str, target: Target) -> tuple[Store | None, ScanStatus | None]:
    if not await anyio.Path(path).exists():
        return None, None
    store = await Store.open(path, readonly=True)
    return store, await store.latest_scan(target)


async def dry_run(
    config: Config,
    progress: Progress,
    stop: anyio.Event,
    *,
    mode: str = "full",
    force: bool = False,
    max_images: int | None = None,
    urls: UrlList | None = None,
    inventory: str | None = None,
    shard: tuple[int, int] | None = None,
) -> Estimate:
    """What `scan` with these flags would send now; writes nothing, bills nothing. An
    Inventory's data files are downloaded into a temporary directory, checked and read."""
    target = url_target(urls.path) if urls is not None else target_of(config)
    if shard is not None:
        target = replace(target, shard=shard)
        config = shard_quota(config, shard[1])
    store, latest = await _latest(config.store.path, target)
    assert config.credentials is not None
    read: InventorySource | None = None
    try:
        async with HttpClient(config.credentials) as http:
            clock = MonotonicClock()
            retry = RetryPolicy.from_settings(config.retry)
            source: Source = urls or Lister(http, config.cos, retry=retry, clock=clock)
            digest = urls.digest if urls is not None else ""
            with tempfile.TemporaryDirectory(prefix="cos-scanner-dry-run-") as spool:
                if inventory is not None:
                    read = await open_inventory(config, http, inventory, clock, spool=Path(spool))
                    source, digest = read, INVENTORY + read.manifest.digest
                if shard is not None:
                    source = ShardSource(source, *shard)
                plan = _Plan(target, source, digest, mode, force, max_images)
                return await _estimate(config, store, latest, progress, stop, plan, urls)
    finally:
        for opened in (urls, read):
            if opened is not None:
                opened.close()
        if store is not None:
            await store.close()


@dataclass(frozen=True, slots=True)
class _Plan:
    """The scan asked for: its target, where its pages come from, and its flags."""

    target: Target
    source: Source
    digest: str  # the input's digest (a URL list's, an Inventory's manifest's; "" listing)
    mode: str
    force: bool
    max_images: int | None


async def _estimate(
    config: Config,
    store: Store | None,
    latest: ScanStatus | None,
    progress: Progress,
    stop: anyio.Event,
    plan: _Plan,
    urls: UrlList | None,
) -> Estimate:
    """The branches of `runner._open_scan`, in its order, counting instead of scanning."""
    est = Estimate(plan.mode, plan.target.id)
    counter = _Counter(est, audit_options(config.audit), plan.max_images, plan.target)
    counter.store, counter.urls = store, urls
    if config.scan.dedupe:
        counter.seen = SeenSet()
    try:
        return await _branches(config, latest, progress, stop, plan, counter)
    finally:
        if counter.seen is not None:
            counter.seen.close()


async def _branches(
    config: Config,
    latest: ScanStatus | None,
    progress: Progress,
    stop: anyio.Event,
    plan: _Plan,
    counter: _Counter,
) -> Estimate:
    est, store, mode = counter.est, counter.store, plan.mode
    marker = ""
    counter.since = time.time() if plan.force else 0.0
    action = opening(plan.target, latest, mode, plan.force, plan.digest)  # raises as scan does
    if action == "resume" and store is not None and latest is not None:
        counter.since = latest.reuse_since
        if not await _resume(store, latest, counter):
            return est
        marker = latest.marker
    elif action == "nothing":
        est.nothing = True
        return est
    elif mode == "retry-failed":
        if store is not None:
            await _failed(store, counter.target, counter)
        return est
    elif (
        latest is None
        and mode == "incremental"
        and (store is None or not await store.has_outcomes(counter.target))
    ):
        est.mode = "full"  # nothing to compare with yet: the scan starts a full one
    priors = store if est.mode == "incremental" else None
    await _list(config, priors, counter, progress, stop, marker, plan.source)
    return est


async def _resume(store: Store, latest: ScanStatus, counter: _Counter) -> bool:
    """Count the unfinished scan's pending objects; True if its listing goes on after them."""
    est = counter.est
    est.mode, est.resumes = latest.mode, latest.id
    est.already_done = latest.audited + latest.failed + latest.skipped
    est.objects += latest.listed
    async for refs in store.iter_pending(latest.id):
        if not await counter.send(refs):
            return False
    return not latest.listing_done


async def _failed(store: Store, target: Target, counter: _Counter) -> None:
    async for refs in store.iter_failed(target):
        counter.est.objects += len(refs)
        if not await counter.send(refs):
            return


async def _list(
    config: Config,
    priors_from: Store | None,
    counter: _Counter,
    progress: Progress,
    stop: anyio.Event,
    marker: str,
    source: Source,
) -> None:
    """List from `marker` and count what the scan would decide to send."""
    est, options = counter.est, counter.options
    urls = counter.urls
    flt: UrlFilter | ObjectFilter = (
        UrlFilter() if urls else ObjectFilter.from_settings(config.scan, config.audit)
    )
    target = counter.target
    progress.phase = "listing (dry run)"
    async for page in _pages(source, marker):
        est.pages += 1
        est.objects += len(page.objects)
        refs = page.objects
        priors = {}
        if priors_from is not None and refs:
            priors = await priors_from.priors(target, [r.key for r in refs])
        fresh = []
        for ref in refs:
            reason = flt.reason(ref)
            if not reason and unchanged(ref, priors.get(ref.key), options):
                reason = "unchanged"
            if reason:
                est.skipped[reason] += 1
            else:
                fresh.append(ref)
        progress.listed = est.objects
        if not await counter.send(fresh) or stop.is_set():
            return
