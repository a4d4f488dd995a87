"""A scan request and its plan: what was asked (`ScanRequest`, built once from argv by the
command line) and the core objects it needs (`ScanPlan`, built once by `make_plan`).

The scan and its dry run both take the plan; nothing below it rebuilds the audit policy, the
service's limits, the retry policy or the budgets from the config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from scanner.audit.backend import ServiceProfile
from scanner.audit.policy import AuditOptions, audit_options
from scanner.clock import Clock
from scanner.config import Config
from scanner.config.window import Window
from scanner.errors import ConfigError
from scanner.limiter import AuditBudget
from scanner.models import Target
from scanner.retry import RetryPolicy
from scanner.scan.filter import Filter, ObjectFilter
from scanner.scan.workers import default_workers
from scanner.sources.inputs import BUCKET, ScanInput, UrlListInput, input_target
from scanner.sources.shard import shard_quota
from scanner.sources.urls import UrlFilter
from scanner.uploaders import user_of


class Mode(StrEnum):
    """What a scan audits: `full` (everything without a verdict; a finished scan is left
    alone), `incremental` (what is new or changed), `retry-failed` (the store's failures),
    `force` (a new full scan, taking no earlier verdict)."""

    FULL = "full"
    INCREMENTAL = "incremental"
    RETRY_FAILED = "retry-failed"
    FORCE = "force"

    @property
    def stored(self) -> str:
        """The mode the store records: a forced scan is a full one."""
        return "full" if self is Mode.FORCE else self.value

    @property
    def force(self) -> bool:
        return self is Mode.FORCE


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRequest:
    """One `scan` command line, checked: nothing below the command line takes loose flags."""

    mode: Mode = Mode.FULL
    input: ScanInput = BUCKET
    prefix: str | None = None  # --prefix (None: the config's)
    shard: tuple[int, int] | None = None  # --shard i/N
    window: Window | None = None  # --window / [scan] window
    workers: int | None = None  # --workers (None: enough for the budget)
    max_images: int | None = None  # --max-images
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """The request made concrete under one config: built once, read everywhere."""

    config: Config  # the effective config: the prefix asked, a shard's share of the quota
    request: ScanRequest
    target: Target
    options: AuditOptions  # what is sent besides the images (the audit policy)
    profile: ServiceProfile  # which service, its limits and batch size
    retry: RetryPolicy
    filter: Filter  # which listed objects are audited
    user_of: Callable[[str], str]  # the uploader a key names

    @property
    def policy(self) -> str:
        """The policy's fingerprint, recorded with the scan."""
        return self.options.fingerprint()

    @property
    def mode(self) -> Mode:
        return self.request.mode

    @property
    def urls(self) -> bool:
        """Whether the input is a URL list (each key is a URL)."""
        return isinstance(self.request.input, UrlListInput)

    def budget(self, clock: Clock) -> AuditBudget:
        return self.profile.budget(clock)

    def worker_processes(self) -> int:
        """Processes that make the audit requests (1: the scan's own)."""
        if not self.profile.workers:
            return 1
        p = self.profile
        return self.request.workers or default_workers(p.qps, p.concurrency, p.batch_size)


#: Why `[ims] input = "content"` is refused for URLs: the scanner would download pictures from
#: anywhere (a URL list may name loopback or private addresses); IMS fetches them itself.
IMS_CONTENT_URLS = (
    '[ims] input = "content" applies to bucket objects only: URLs are sent as FileUrl and '
    'IMS fetches them; set input = "url" (the default) for URL lists'
)


def make_plan(config: Config, request: ScanRequest) -> ScanPlan:
    """The plan of `request` under `config`."""
    if request.prefix is not None:
        config = replace(config, cos=replace(config.cos, prefix=request.prefix))
    target = input_target(request.input, config)
    if request.shard is not None:
        target = replace(target, shard=request.shard)
        config = shard_quota(config, request.shard[1])
    urls = isinstance(request.input, UrlListInput)
    flt: Filter = UrlFilter() if urls else ObjectFilter.from_settings(config.scan, config.audit)
    profile = ServiceProfile.of(config)
    if urls and profile.name == "ims" and config.ims.input == "content":
        raise ConfigError(IMS_CONTENT_URLS)
    return ScanPlan(
        config,
        request,
        target,
        audit_options(config.audit, config.freeze, config.scan.media, config.video),
        profile,
        RetryPolicy.from_settings(config.retry),
        flt,
        user_of(config.scan),
    )
