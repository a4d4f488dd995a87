"""AuditClient: one synchronous batch image audit per call, under the audit budget.

Each attempt takes one in-flight slot and one token of the QPS budget around the HTTP call;
a throttling answer shrinks the budget, a success grows it back. Transport errors, timeouts,
5xx and throttling are retried (`scanner.retry`); per-image failures come back as data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scanner.audit.codec import AuditOptions, decode_results, encode_batch
from scanner.clock import Clock
from scanner.config import AuditSettings, CosSettings
from scanner.cos.client import HttpClient, ci_service, unreadable
from scanner.cos.xml import XmlError
from scanner.errors import RemoteError, ThrottledError
from scanner.limiter import AuditBudget
from scanner.models import AuditItem, ImageVerdict
from scanner.retry import RetryPolicy, retrying


def audit_options(settings: AuditSettings) -> AuditOptions:
    return AuditOptions(
        biz_type=settings.biz_type,
        detect_type=",".join(settings.scenes),
        policy_version=settings.policy_version,
        interval=settings.interval,
        max_frames=settings.max_frames,
        large_image_detect=settings.large_image_detect,
    )


class AuditClient:
    """Audits batches of objects of one bucket."""

    def __init__(
        self,
        http: HttpClient,
        cos: CosSettings,
        settings: AuditSettings,
        *,
        retry: RetryPolicy,
        clock: Clock,
        budget: AuditBudget,
        on_retry: Callable[[RemoteError, int, float], None] | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._service = ci_service(cos, settings)
        self.options = audit_options(settings)
        self._retry = retry
        self._clock = clock
        self.budget = budget
        self._on_retry = on_retry
        self.requests = 0

    async def moderate(self, items: Sequence[AuditItem]) -> list[ImageVerdict]:
        """Verdicts (or per-image failures) for `items`, in their order."""
        body = encode_batch(items, self.options)

        async def attempt() -> list[ImageVerdict]:
            async with self.budget as sent_at:
                self.requests += 1
                try:
                    reply = await self._http.send(
                        self._service,
                        "POST",
                        "/image/auditing",
                        body=body,
                        content_type="application/xml",
                        timeout_s=self._settings.timeout,
                        max_bytes=self._settings.max_response_bytes,
                    )
                except ThrottledError as exc:
                    self.budget.rate.on_throttled(sent_at, exc.retry_after)
                    raise
            self.budget.rate.on_success()
            try:
                return decode_results(reply.body, items)
            except (XmlError, ValueError) as exc:
                raise unreadable("audit", "audit answer", reply, exc) from exc

        return await retrying(self._retry, self._clock, attempt, on_retry=self._on_retry)
