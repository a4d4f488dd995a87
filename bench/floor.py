"""The client-cost floor: the per-object work cos-scanner's guarantees need, with no HTTP,
no event-loop pipeline and no retries around it.

Produces the album's listing pages and audit answers with the emulator's own functions (not
measured), then measures the CPU (time.process_time: every thread of this process) of

  parse   the listing pages (ElementTree, url-decoding, the filter) and the audit answers
          (ElementTree, matching by DataId, building the verdicts)
  store   the real Store under the target's lease: record_page and admission (`Store.admit`:
          verdicts that stand, copies, claims) per 1,000-object page, record_results per group
          of 5 batches as the writer commits them (which releases the claims), each one
          transaction synced to disk as a scan does, deflating the raws

and prints CPU-s per 10,000 objects for each, their sum, and the best ratio to the SDK script
that this floor leaves (pass the script's CPU-s / 10k from client_cost.py as --sdk).

    .venv/bin/python bench/floor.py --objects 100000 --sdk 4.33

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import tempfile
import time
from pathlib import Path

from common import parse

from scanner.audit.codec import decode_results, encode_batch
from scanner.audit.policy import AuditOptions
from scanner.config import AuditSettings, ScanSettings
from scanner.cos.listing import parse_page
from scanner.emulator import EmulatorState, synthetic
from scanner.emulator.app import list_objects
from scanner.emulator.audit import audit
from scanner.models import AuditItem, Decision, ImageVerdict, ObjectRef, Target
from scanner.scan.batcher import chunk
from scanner.scan.filter import ObjectFilter
from scanner.store import Store

TARGET = Target("album-1250000000", "ap-guangzhou", "")
#: Batches per results transaction: the scan's writer commits what has arrived while it wrote
#: the last group, ~5 batches at zero latency (100,000 objects: 923 batches in 177 commits).
GROUP = 5


def produce(objects: int) -> tuple[list[tuple[str, bytes]], list[tuple[list[AuditItem], bytes]]]:
    """Listing pages (marker, body) and audit (items, answer) pairs, as the emulator answers."""
    state = EmulatorState(bucket=synthetic(objects, 1))
    flt = ObjectFilter.from_settings(ScanSettings(), AuditSettings())
    pages: list[tuple[str, bytes]] = []
    marker: str | None = ""
    refs: list[ObjectRef] = []
    while marker is not None:
        query = {"marker": marker, "max-keys": "1000", "encoding-type": "url"}
        body = list_objects(state, query).encode()
        page = parse_page(body, marker)
        pages.append((marker, body))
        refs += [d.ref for d in map(flt.decide, page.objects) if not d.skip]
        marker = page.next_marker
    return pages, asyncio.run(_answers(state, refs))


async def _answers(
    state: EmulatorState, refs: list[ObjectRef]
) -> list[tuple[list[AuditItem], bytes]]:
    """The emulator's audit answers to the album's batches (its handler is a coroutine)."""
    answers = []
    for batch in chunk(refs, 100):
        items = [AuditItem(ref.key, str(n)) for n, ref in enumerate(batch)]
        answers.append((items, (await audit(state, encode_batch(items, AuditOptions()))).encode()))
    return answers


async def store_work(
    path: Path,
    decided: list[tuple[list[Decision], str | None]],
    verdicts: list[list[ImageVerdict]],
) -> float:
    by_key = {d.ref.key: d.ref for decisions, _next in decided for d in decisions}
    async with await Store.open(path) as store:
        scan = await store.start_scan(TARGET, "p")
        started = time.process_time()
        # a scan holds its target's lease: alone on the bucket, it claims in memory and
        # writes its contents rows in bulk (store/sharing.py)
        await store.acquire_lease(
            TARGET, "floor", host="floor", pid=0, stale_after=60.0, is_dead=lambda h, p: False
        )
        for decisions, next_marker in decided:
            fresh = await store.record_page(scan.id, decisions, next_marker)
            await store.admit(  # what a scan settles before sending: verdicts, copies, claims
                scan.id, TARGET, "floor", fresh, holds=lambda _p, _r: True, dedupe=True,
                stale_after=60.0,
            )  # fmt: skip
        for n in range(0, len(verdicts), GROUP):  # the writer's group commit
            pairs = [(by_key[v.key], v) for batch in verdicts[n : n + GROUP] for v in batch]
            await store.record_results(
                scan.id, TARGET, "p", pairs, requests=GROUP, max_attempts=3, owner="floor"
            )
        await store.release_claims("floor")
        await store.release_lease(TARGET, "floor")
        return time.process_time() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--sdk", type=float, default=None, help="the SDK script's CPU-s / 10k")
    args = parse(ap, objects=2000)
    print(f"{platform.node()}: Python {platform.python_version()}, one process, no emulator")
    pages, answers = produce(args.objects)
    gc.freeze()  # as the CLI does; the produced data is this bench's, not a scan's
    gc.set_threshold(20_000, 50, 100)  # as the CLI does
    per10k = 10_000 / args.objects
    images = sum(len(items) for items, _ in answers)

    flt = ObjectFilter.from_settings(ScanSettings(), AuditSettings())
    started = time.process_time()
    decided = []
    for marker, body in pages:
        page = parse_page(body, marker)
        decided.append(([flt.decide(r) for r in page.objects], page.next_marker))
    listing = time.process_time() - started
    started = time.process_time()
    for items, body in answers:  # dropped as they come, as a scan does
        decode_results(body, items)
    decoding = time.process_time() - started
    verdicts = [decode_results(body, items) for items, body in answers]
    gc.freeze()  # a scan holds one batch's verdicts at a time, not all of them
    with tempfile.TemporaryDirectory() as tmp:
        storing = asyncio.run(store_work(Path(tmp, "floor.db"), decided, verdicts))
    total = listing + decoding + storing
    print(f"{args.objects:,} objects in {len(pages)} pages, {images:,} images to audit")
    for name, cpu in (
        ("listing parse + filter", listing),
        ("audit answers parse + decode", decoding),
        ("store pages + admission + results (synced)", storing),
        ("floor", total),
    ):
        print(f"  {name:<46} {cpu * per10k:5.2f} CPU-s / 10k objects")
    if args.sdk:
        best = args.sdk / (total * per10k)
        print(f"the SDK script's {args.sdk:.2f} CPU-s / 10k allows at most {best:.2f}x")


if __name__ == "__main__":
    main()
