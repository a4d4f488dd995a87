"""`scan --shard i/N`: the part of a target whose keys hash to i (mod N).

A shard lists (or reads from an Inventory) the whole target and keeps its own keys: listing
is the cheap part, and N processes on N machines each audit a disjoint 1/N of the keys,
balanced by the hash whatever the prefixes look like. The union of the N shards is the
target. The other shards' keys are not recorded at all, so a shard's store holds only its
own part, and `report --store A --store B ...` puts the shards back together.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from scanner.config import Config
from scanner.errors import ConfigError
from scanner.models import Page, shard_of


class _Pages(Protocol):
    async def page(self, marker: str) -> Page: ...


def parse_shard(text: str) -> tuple[int, int]:
    """`i/N` (0 <= i < N) as (i, N)."""
    index, slash, count = text.partition("/")
    if not slash or not index.strip().isdigit() or not count.strip().isdigit():
        raise ConfigError(f"--shard must be i/N, e.g. 0/4 (got {text!r})")
    i, n = int(index), int(count)
    if not 1 <= n <= 4096 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < N <= 4096")
    return i, n


class ShardSource:
    """The pages of `source` with only the keys of shard `index` of `count`."""

    def __init__(self, source: _Pages, index: int, count: int) -> None:
        self._source = source
        self._index = index
        self._count = count

    async def page(self, marker: str) -> Page:
        page = await self._source.page(marker)
        mine = tuple(o for o in page.objects if shard_of(o.key, self._count) == self._index)
        return Page(page.marker, mine, page.common_prefixes, page.next_marker)


def shard_quota(config: Config, count: int) -> Config:
    """A shard's 1/N of the quota: requests per second (audits and COS), requests in flight,
    the daily cap."""
    audit = replace(
        config.audit,
        qps=config.audit.qps / count,
        concurrency=max(1, -(-config.audit.concurrency // count)),
    )
    ims = replace(
        config.ims,
        qps=config.ims.qps / count,
        concurrency=max(1, -(-config.ims.concurrency // count)),
    )
    scan = replace(config.scan, daily_cap=-(-config.scan.daily_cap // count))
    cos = replace(config.cos, qps=config.cos.qps / count)  # every shard lists the whole target
    return replace(config, cos=cos, audit=audit, ims=ims, scan=scan)
