"""The audit backend the pipeline calls, whichever service answers ([audit] service).

- `ci` (default): CI batch image auditing, up to 100 images a request (`AuditClient`);
- `ims`: IMS ImageModeration, one image a request (`ImsClient`), under the [ims] budget.

Both take `AuditItem`s and give `ImageVerdict`s in the same order, under one strict budget
per service, with the same retry, resend and billing rules; every backend passes the one
contract suite (tests/audit/test_contract.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from scanner.audit.client import AuditClient, Remote
from scanner.audit.ims import ImsClient
from scanner.audit.policy import AuditOptions
from scanner.clock import Clock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.errors import OnRetry
from scanner.limiter import AuditBudget
from scanner.models import AuditItem, ImageVerdict
from scanner.retry import RetryPolicy


class AuditBackend(Protocol):
    options: AuditOptions
    budget: AuditBudget

    @property
    def batch_size(self) -> int:
        """Images per request."""
        ...

    async def moderate(
        self, items: Sequence[AuditItem], stop: anyio.Event | None = None
    ) -> list[ImageVerdict]:
        """Verdicts (or per-image failures) for `items`, in their order."""
        ...


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """The one place that knows which service audits ([audit] service) and what follows
    from it: its budget, its images per request, whether worker processes make its requests,
    and what to call it."""

    name: str  # "ci" | "ims"
    label: str  # what a person calls its requests
    concurrency: int  # requests in flight
    qps: float  # requests per second
    batch_size: int  # images per request
    workers: bool  # whether `--workers` processes make its requests

    @classmethod
    def of(cls, config: Config) -> ServiceProfile:
        if config.audit.service == "ims":
            return cls("ims", "IMS", config.ims.concurrency, config.ims.qps, 1, False)
        audit = config.audit
        return cls("ci", "batch audit", audit.concurrency, audit.qps, audit.batch_size, True)

    def budget(self, clock: Clock) -> AuditBudget:
        """The strict budget (slots and QPS) every request of a scan goes through."""
        return AuditBudget(self.concurrency, self.qps, clock)


def make_backend(
    config: Config,
    profile: ServiceProfile,
    options: AuditOptions,
    http: HttpClient,
    *,
    retry: RetryPolicy,
    clock: Clock,
    budget: AuditBudget,
    on_retry: OnRetry | None = None,
    remote: Remote | None = None,
) -> AuditBackend:
    if profile.name == "ims":
        return ImsClient(
            http, config.cos, config.audit, config.ims, retry=retry,
            clock=clock, budget=budget, on_retry=on_retry, options=options,
        )  # fmt: skip
    return AuditClient(
        http, config.cos, config.audit, retry=retry, clock=clock, budget=budget,
        on_retry=on_retry, options=options, remote=remote,
    )  # fmt: skip
