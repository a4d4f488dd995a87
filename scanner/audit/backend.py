"""The audit backend the pipeline calls, whichever service answers ([audit] service).

- `ci` (default): CI batch image auditing, up to 100 images a request (`AuditClient`);
- `ims`: IMS ImageModeration, one image a request (`ImsClient`), under the [ims] budget.

Both take `AuditItem`s and give `ImageVerdict`s in the same order, under one strict budget
per service, with the same retry, resend and billing rules; every backend passes the one
contract suite (tests/audit/test_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import anyio

from scanner.audit.client import AuditClient, Remote
from scanner.audit.codec import AuditOptions
from scanner.audit.ims import ImsClient
from scanner.clock import Clock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.errors import RemoteError
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


def limits(config: Config) -> tuple[int, float]:
    """(requests in flight, requests per second) of the configured service."""
    if config.audit.service == "ims":
        return config.ims.concurrency, config.ims.qps
    return config.audit.concurrency, config.audit.qps


def make_backend(
    config: Config,
    http: HttpClient,
    *,
    retry: RetryPolicy,
    clock: Clock,
    budget: AuditBudget,
    on_retry: Callable[[RemoteError, int, float], None] | None = None,
    remote: Remote | None = None,
) -> AuditBackend:
    assert config.credentials is not None
    if config.audit.service == "ims":
        return ImsClient(
            http, config.credentials, config.cos, config.audit, config.ims, retry=retry,
            clock=clock, budget=budget, on_retry=on_retry, freeze=config.freeze,
        )  # fmt: skip
    return AuditClient(
        http, config.cos, config.audit, retry=retry, clock=clock, budget=budget,
        on_retry=on_retry, freeze=config.freeze, remote=remote,
    )  # fmt: skip
