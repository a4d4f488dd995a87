"""What a scan reads, as a value (`BucketInput`, `UrlListInput`, `InventoryInput`), and the one
way to open it (`open_input`) that the scan and its dry run share.

An opened input is a source of pages (`page(marker)`) and the digest that names it in the
store: "" for a bucket listing, a URL list's SHA-256, `inventory:` and a manifest's MD5. A shard
(`--shard i/N`) reads the same input and keeps its own keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scanner.clock import Clock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister, cos_budget
from scanner.errors import OnRetry
from scanner.models import Page, Target
from scanner.retry import RetryPolicy
from scanner.sources.inventory import InventorySource, open_inventory
from scanner.sources.shard import ShardSource
from scanner.sources.urls import UrlList, url_target

#: A scan's source digest when it reads an Inventory (+ the manifest's MD5).
INVENTORY = "inventory:"


@dataclass(frozen=True, slots=True)
class BucketInput:
    """List the configured bucket (under its prefix)."""


@dataclass(frozen=True, slots=True)
class UrlListInput:
    """`--urls FILE`: one URL a line, or a CSV with a `url` column."""

    path: Path


@dataclass(frozen=True, slots=True)
class InventoryInput:
    """`--inventory MANIFEST`: cos://bucket/path/manifest.json or a local path."""

    manifest: str


ScanInput = BucketInput | UrlListInput | InventoryInput
BUCKET = BucketInput()


def input_target(what: ScanInput, config: Config) -> Target:
    """The store's target of an input: the URL list's own, else the configured bucket's."""
    if isinstance(what, UrlListInput):
        return url_target(what.path)
    return Target.of(config.cos)


class Opened:
    """An input opened for reading: its pages, the digest that names it, and what it is."""

    def __init__(self, reader: Lister | UrlList | InventorySource, digest: str) -> None:
        self.reader = reader  # the input itself: a Lister's split points, an Inventory's total
        self.digest = digest
        self.source: Lister | UrlList | InventorySource | ShardSource = reader

    async def page(self, marker: str) -> Page:
        return await self.source.page(marker)

    def close(self) -> None:
        if isinstance(self.reader, UrlList | InventorySource):
            self.reader.close()


async def open_input(
    what: ScanInput,
    config: Config,
    http: HttpClient,
    *,
    retry: RetryPolicy,
    clock: Clock,
    shard: tuple[int, int] | None = None,
    on_retry: OnRetry | None = None,
    spool: Path | None = None,
) -> Opened:
    """Open `what` for reading (an Inventory's manifest is fetched and checked; its data files
    go to `spool`, default beside the store); a shard keeps only its own keys."""
    opened: Opened
    budget = cos_budget(config.cos, clock)  # listing pages, folder views, Inventory downloads
    if isinstance(what, UrlListInput):
        urls = UrlList(what.path, page_size=config.cos.page_size)
        opened = Opened(urls, urls.digest)
    elif isinstance(what, InventoryInput):
        read = await open_inventory(
            config, http, what.manifest, clock, budget, retry, on_retry=on_retry, spool=spool
        )
        opened = Opened(read, INVENTORY + read.manifest.digest)
    else:
        lister = Lister(
            http, config.cos, retry=retry, clock=clock, on_retry=on_retry, budget=budget
        )
        opened = Opened(lister, "")
    if shard is not None:
        opened.source = ShardSource(opened.reader, *shard)
    return opened
