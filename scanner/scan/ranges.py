"""The listing stage: pages fetched ahead of what is recorded, in key ranges listed at once.

One range (the whole target, from the scan's marker) or several (`[cos] list_concurrency`),
each listed by its own task from its own checkpointed marker. Each task fetches up to
`PREFETCH` pages ahead of the page being recorded, so a slow listing request overlaps the
recording and sending of the pages before it. A page is handed to `take` (which records it
with its next marker, then sends its objects downstream) in order; pages fetched but not
taken when the pass ends are dropped, to be listed again by the next run: a recorded page is
never listed again.

The first split (common prefixes, `Lister.split`) cannot know how many keys each range holds.
So a lister whose range is done takes half of what is left of the busiest range: the range's
upper bound moves down to a key past what it has fetched, and a new range from there to the
old bound starts, both in one store transaction. The key comes from `probe` (delimiter
listings from the range's position: `Lister.split_point`), so both sides hold keys; cutting
the key space at its midpoint instead (`midpoint`, the fallback) lands in empty stretches of
a bucket whose keys crowd under a few prefixes, each miss costing the idle lister a request.
Ranges with too little left are not split.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from scanner.errors import AbandonedError
from scanner.models import KeyRange, Page
from scanner.retry import unless_set

PREFETCH = 4  # listed pages held ahead of the one being recorded, per range
_TOP = 0x10FFFF

#: Records a page of a range (None: the scan's single listing) and sends its objects on;
#: False when the pass takes no more (capped).
Take = Callable[[Page, int | None], Awaitable[bool]]
#: Cuts range `idx` at `mid` and opens a range from there to its old bound; the new range,
#: or None when the range had already listed past `mid`.
Split = Callable[[int, str], Awaitable[KeyRange | None]]
Fetch = Callable[[str], Awaitable[Page]]
#: A key strictly between (after, upto) with keys on both sides, found by listing (None: the
#: range is too small to split).
Probe = Callable[[str, str | None], Awaitable[str | None]]


def within(page: Page, upto: str | None) -> Page:
    """`page` cut at the range's upper bound (keys <= upto); its listing ends there."""
    if upto is None:
        return page
    inside = tuple(o for o in page.objects if o.key <= upto)
    if len(inside) < len(page.objects) or page.next_marker is None or page.next_marker >= upto:
        return Page(page.marker, inside, next_marker=None)
    return page


def _char_between(a: int, b: int) -> int | None:
    """A code point strictly between a and b, favouring ASCII (where most keys are)."""
    if a < 0x7F < b:
        b = 0x7F
    if b - a < 2:
        return None
    c = (a + b) // 2
    if 0xD800 <= c <= 0xDFFF:  # surrogates are not characters: no key holds them
        c = 0xD7FF if a < 0xD7FF else 0xE000
    return c if a < c < b else None


def midpoint(lo: str, hi: str | None, depth: int = 64) -> str | None:
    """A string m with lo < m < hi (hi None: no bound) at about the middle of the key space
    between them; None when there is none short enough."""
    for i in range(min(depth, len(lo) + 1)):
        a = ord(lo[i]) if i < len(lo) else -1
        b = ord(hi[i]) if hi is not None and i < len(hi) else _TOP + 1
        if hi is not None and i >= len(hi):
            return None  # hi is a prefix of lo: nothing between
        if a == b:
            continue
        c = _char_between(max(a, 0x1F), b)
        if c is not None and c > a:
            return lo[:i] + chr(c)
        # b = a + 1: keep lo's char, find room after it (below the top of the code space)
        rest = midpoint(lo[i + 1 :], None, depth - i - 1) if a >= 0 else None
        return lo[: i + 1] + rest if rest is not None else None
    return None


@dataclass
class _Lane:
    """A range being listed: its bound may move down when an idle lister takes half."""

    idx: int | None
    marker: str  # the last recorded next marker
    upto: str | None
    pages: int = 0  # recorded pages in this pass (the busiest range is split)
    ending: bool = False  # its last page is being recorded: nothing left to split
    ahead: str = ""  # where its fetching has got to (pages fetched ahead of `marker`)
    probed: bool = False  # an idle lister is looking for where to split it
    fetched: bool = False  # its last page is fetched: nothing past `ahead` to split off
    # held while a page is cut at the bound and taken as the marker, and while a split
    # checks the marker and moves the bound: a page is never taken past a bound being cut
    lock: anyio.Lock = field(default_factory=anyio.Lock)


async def _ahead(
    lane: _Lane, fetch: Fetch, at: str, pages_tx: MemoryObjectSendStream[Page], stop: anyio.Event
) -> None:
    """Fetch the range's pages from `at`, up to the stream's capacity ahead."""
    async with pages_tx:
        while not stop.is_set():
            try:  # a signal cancels a slow listing request at once (it costs nothing)
                page = await unless_set(stop, functools.partial(fetch, at))
            except AbandonedError:
                return
            page = within(page, lane.upto)
            lane.ahead = page.next_marker or lane.ahead
            try:
                await pages_tx.send(page)
            except anyio.BrokenResourceError:
                return  # the pass stopped taking pages (capped, or a stop)
            if page.next_marker is None:
                lane.fetched = True
                return
            at = page.next_marker


async def _lane(lane: _Lane, fetch: Fetch, take: Take, stop: anyio.Event) -> bool:
    """List one range; True when it reached its end (False: a stop, or the pass is capped)."""
    pages_tx, pages_rx = anyio.create_memory_object_stream[Page](PREFETCH)
    ended = False
    async with anyio.create_task_group() as tg:
        tg.start_soon(_ahead, lane, fetch, lane.marker, pages_tx, stop, name=f"fetch-{lane.idx}")
        async with pages_rx:
            async for fetched in pages_rx:
                if stop.is_set():
                    break
                async with lane.lock:  # the bound may have moved since the fetch
                    page = within(fetched, lane.upto)
                    if page.next_marker is None:
                        lane.ending = True
                    else:  # before `take` awaits: a split while it records starts past it
                        lane.marker = page.next_marker
                if not await take(page, lane.idx):
                    break
                lane.pages += 1
                if page.next_marker is None:
                    ended = True
                    break
        tg.cancel_scope.cancel()
    return ended


async def list_target(
    marker: str,
    ranges: list[KeyRange],
    fetch: Fetch,
    take: Take,
    split: Split,
    stop: anyio.Event,
    parts: int,
    probe: Probe | None = None,
) -> bool:
    """List the scan's single range from `marker`, or its unfinished `ranges` with up to
    `parts` listers at once, rebalanced at the split points `probe` finds (None: at key-space
    midpoints). True when the whole listing has ended."""
    if not ranges:
        return await _lane(_Lane(None, marker, None), fetch, take, stop)
    queue = [_Lane(r.idx, r.marker, r.upto) for r in ranges]
    opened = len(queue)
    finished = 0
    live: list[_Lane] = []

    async def lister() -> None:
        nonlocal opened, finished
        lane: _Lane | None = queue.pop(0)
        while lane is not None and not stop.is_set():
            live.append(lane)
            ended = await _lane(lane, fetch, take, stop)
            live.remove(lane)
            if not ended:
                return
            finished += 1
            if queue:
                lane = queue.pop(0)
                continue
            lane = await _take_half(live, split, probe, stop)
            opened += lane is not None

    async with anyio.create_task_group() as tg:
        for n in range(min(parts, len(queue))):
            tg.start_soon(lister, name=f"lister-{n}")
    return finished == opened


async def _take_half(
    live: list[_Lane], split: Split, probe: Probe | None, stop: anyio.Event
) -> _Lane | None:
    """The second half of the busiest live range that can be cut, for an idle lister; None
    when none can. While another idle lister is probing a range, wait for its cut and look
    again (the first half may be worth cutting again) rather than give up."""
    while not stop.is_set():
        new, busy = await _steal(live, split, probe, stop)
        if new is not None or not busy:
            return new
        with anyio.move_on_after(0.1):
            await stop.wait()
    return None


async def _steal(
    live: list[_Lane], split: Split, probe: Probe | None, stop: anyio.Event
) -> tuple[_Lane | None, bool]:
    """Cut the busiest live range where `probe` says; the new range, and whether a range
    was left alone because another lister is probing it."""
    busy = False
    for lane in sorted(live, key=lambda x: -x.pages):
        if lane.idx is None or lane.ending or lane.fetched:
            continue
        if lane.probed:
            busy = True
            continue
        at = max(lane.marker, lane.ahead)  # past what it has fetched
        lane.probed = True  # one idle lister probes a range at a time
        try:
            if probe is None:
                mid = midpoint(at, lane.upto)
            else:  # a stop gives up a probe at once, as it does a listing request
                mid = await unless_set(stop, functools.partial(probe, at, lane.upto))
        except AbandonedError:
            return None, False
        finally:
            lane.probed = False
        async with lane.lock:  # the lane takes no page while its bound is being cut
            if mid is None or mid <= lane.marker or lane.ending:
                continue  # too little left, or the lane took a page past it meanwhile
            if lane.upto is not None and mid >= lane.upto:
                continue  # the range was cut below it meanwhile
            new = await split(lane.idx, mid)
            if new is None:
                continue
            lane.upto = mid
        return _Lane(new.idx, new.marker, new.upto), busy
    return None, busy
