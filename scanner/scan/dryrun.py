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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from scanner.audit.backend import ServiceProfile
from scanner.audit.policy import LARGE_IMAGE_BYTES, AuditOptions, policy_still_holds
from scanner.clock import MonotonicClock
from scanner.config import MAX_SCENES, Config
from scanner.cos.client import HttpClient
from scanner.cos.credentials import provider_of
from scanner.cos.listing import Lister
from scanner.media import IMAGE, class_of
from scanner.models import ObjectRef, Page, ScanStatus, Target, content_key
from scanner.scan.decide import Priors, decide
from scanner.scan.media_estimate import MediaEstimate
from scanner.scan.pipeline import Source
from scanner.scan.plan import Mode, ScanPlan
from scanner.scan.progress import Progress
from scanner.scan.runner import opening
from scanner.sources.inputs import Opened, open_input
from scanner.store import Store
from scanner.store.jobs import Known
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
    media: MediaEstimate | None = None  # videos, voice notes, documents ([scan] media)

    @property
    def jobs(self) -> int:
        """Media objects a run would submit as moderation jobs."""
        classes = self.media.classes.values() if self.media is not None else ()
        return sum(c.objects for c in classes)

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

    def as_json(self, config: Config, profile: ServiceProfile) -> dict[str, Any]:
        scenes = config.audit.scenes_per_image
        price = self.price(config)
        return {
            "target": self.target or Target.of(config.cos).id,
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
            "duration_s": round(self.duration(profile.batch_size, profile.qps), 3),
            "media": {} if self.media is None else self.media.as_json(config),
        }


@dataclass
class _Counter:
    est: Estimate
    options: AuditOptions
    max_images: int | None
    target: Target
    seen: SeenSet | None = None  # with [scan] dedupe: the contents this run would send
    store: Store | None = None
    since: float = 0.0  # the store's verdicts before this are not taken (a --force scan)

    async def send(self, refs: Sequence[ObjectRef]) -> bool:
        """Count `refs` as sent, less the copies the scan would not pay for (content audited
        before, or sent earlier in this run); False once `--max-images` is reached."""
        refs = await self._distinct(refs)
        media, est = self.est.media, self.est
        known = await self._known(refs) if media is not None else {}
        for ref in refs:
            if self.max_images is not None and est.images + est.jobs >= self.max_images:
                self.est.capped = True
                return False
            kind = class_of(ref.key) if media is not None else IMAGE
            if media is not None and kind is not None and kind != IMAGE:
                media.add(kind, ref, known.get(ref.key))
                continue
            self.est.images += 1
            self.est.bytes += ref.size
            self.est.large_images += self.options.large_image_detect and (
                ref.size > LARGE_IMAGE_BYTES
            )
        return True

    async def _known(self, refs: Sequence[ObjectRef]) -> dict[str, Known]:
        """What earlier jobs measured of the media among `refs` (exact frames and pages)."""
        media = [r for r in refs if class_of(r.key) not in (IMAGE, None)]
        return await self.store.known_units(media) if self.store is not None and media else {}

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


async def _latest(
    path: str, target: Target
) -> tuple[Store | None, ScanStatus | None, ScanStatus | None]:
    """The store (if there is one), the target's newest scan and its newest unfinished one."""
    if not await anyio.Path(path).exists():
        return None, None, None
    store = await Store.open(path, readonly=True)
    waiting = await store.unfinished_scans(target)
    return store, await store.latest_scan(target), (waiting[0] if waiting else None)


async def dry_run(plan: ScanPlan, progress: Progress, stop: anyio.Event) -> Estimate:
    """What `scan` with this plan would send now; writes nothing, bills nothing. An
    Inventory's data files are downloaded into a temporary directory, checked and read."""
    config = plan.config
    store, newest, unfinished = await _latest(config.store.path, plan.target)
    try:
        async with HttpClient(provider_of(config)) as http:
            with tempfile.TemporaryDirectory(prefix="cos-scanner-dry-run-") as spool:
                opened = await open_input(
                    plan.request.input, config, http, retry=plan.retry, clock=MonotonicClock(),
                    shard=plan.target.shard, spool=Path(spool),
                )  # fmt: skip
                try:
                    return await _estimate(
                        plan, store, (newest, unfinished), progress, stop, opened
                    )
                finally:
                    opened.close()
    finally:
        if store is not None:
            await store.close()


async def _estimate(
    plan: ScanPlan,
    store: Store | None,
    scans: tuple[ScanStatus | None, ScanStatus | None],
    progress: Progress,
    stop: anyio.Event,
    opened: Opened,
) -> Estimate:
    """The branches of `runner._open_scan`, in its order, counting instead of scanning."""
    est = Estimate(plan.mode.stored, plan.target.id)
    if plan.options.jobs and not plan.urls:
        est.media = MediaEstimate(plan.options)
    counter = _Counter(est, plan.options, plan.request.max_images, plan.target)
    counter.store = store
    if plan.config.scan.dedupe:
        counter.seen = SeenSet()
    try:
        return await _branches(plan, scans, progress, stop, opened, counter)
    finally:
        if counter.seen is not None:
            counter.seen.close()


async def _branches(
    plan: ScanPlan,
    scans: tuple[ScanStatus | None, ScanStatus | None],  # the newest, the newest unfinished
    progress: Progress,
    stop: anyio.Event,
    opened: Opened,
    counter: _Counter,
) -> Estimate:
    est, store, mode = counter.est, counter.store, plan.mode
    marker = ""
    counter.since = time.time() if mode.force else 0.0
    latest, unfinished = scans
    action = opening(plan.target, latest, unfinished, mode, opened.digest)  # as scan does
    if action == "resume" and store is not None and unfinished is not None:
        counter.since = unfinished.reuse_since
        if not await _resume(store, unfinished, counter):
            return est
        marker = unfinished.marker
    elif action == "nothing":
        est.nothing = True
        if isinstance(opened.reader, Lister):  # still test the configuration, as a scan would
            await opened.reader.probe()
        return est
    elif mode is Mode.RETRY_FAILED:
        if store is not None:
            await _failed(store, counter.target, counter)
        return est
    elif (
        latest is None
        and mode is Mode.INCREMENTAL
        and (store is None or not await store.has_outcomes(counter.target))
    ):
        est.mode = "full"  # nothing to compare with yet: the scan starts a full one
    priors = store.priors if est.mode == "incremental" and store is not None else None
    await _list(plan, priors, counter, progress, stop, marker, opened)
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
    plan: ScanPlan,
    priors: Priors | None,
    counter: _Counter,
    progress: Progress,
    stop: anyio.Event,
    marker: str,
    source: Source,
) -> None:
    """List from `marker` and count what the scan would decide to send (`pipeline.decide`)."""
    est = counter.est
    progress.enter("listing (dry run)")
    async for page in _pages(source, marker):
        est.pages += 1
        est.objects += len(page.objects)
        fresh = []
        for decision in await decide(page.objects, plan, priors):
            if decision.skip:
                est.skipped[decision.skip] += 1
            else:
                fresh.append(decision.ref)
        progress.listed = est.objects
        if not await counter.send(fresh) or stop.is_set():
            return
