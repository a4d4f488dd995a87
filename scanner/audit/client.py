"""AuditClient: one synchronous batch image audit per call, under the audit budget.

Each attempt takes one in-flight slot and one token of the QPS budget around the HTTP call;
a throttling answer shrinks the budget, a success grows it back. Transport errors, timeouts,
5xx and throttling are retried (`scanner.retry`); per-image failures come back as data.

A batch is billed when the service does it, whether or not its answer reaches us. So a request
that never left (connect failed) is sent again freely, but one whose answer was lost after it
left (a timeout, a reset) is sent again at most `[audit] resend_after_timeout` times, each
resend counted as its images possibly billed twice (`ImageVerdict.maybe_double`); after that
its images fail with `timeout-maybe-billed`, for `scan --retry-failed` to decide about. An
answer that is not readable fails its images with `unreadable-answer`: it was billed, another
try would bill again, and the scan goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import anyio

from scanner.audit.codec import decode_results, encode_batch
from scanner.audit.policy import AuditOptions
from scanner.clock import Clock
from scanner.config import AuditSettings, CosSettings
from scanner.cos.client import HttpClient, Reply, ci_service, unreadable
from scanner.cos.xml import XmlError
from scanner.errors import OnRetry, RemoteError, ThrottledError, TransportError
from scanner.limiter import AuditBudget
from scanner.models import AuditItem, ImageVerdict
from scanner.retry import RetryPolicy, retrying, unless_set

#: One attempt's request and answer done elsewhere (`scanner.scan.workers.WorkerPool.attempt`).
Remote = Callable[[Sequence[AuditItem]], Awaitable[list[ImageVerdict]]]


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
        on_retry: OnRetry | None = None,
        options: AuditOptions,
        remote: Remote | None = None,
    ) -> None:
        self._http = http
        self._remote = remote  # --workers: an attempt's request and answer in a worker process
        self._settings = settings
        self._service = ci_service(cos, settings)
        self.options = options  # the plan's: built once, from the settings and [audit.freeze]
        self._retry = retry
        self._clock = clock
        self.budget = budget
        self._on_retry = on_retry
        self.requests = 0
        self.maybe_double = 0  # images possibly billed twice (resent after a lost answer)

    @property
    def batch_size(self) -> int:
        return self._settings.batch_size

    async def moderate(
        self, items: Sequence[AuditItem], stop: anyio.Event | None = None
    ) -> list[ImageVerdict]:
        """Verdicts (or per-image failures) for `items`, in their order.

        Once `stop` is set (the first signal) nothing more is sent: a batch still waiting for
        the budget raises AbandonedError at once (it cost nothing; its objects stay pending),
        a request on the wire is awaited but never retried, and a lost answer is not resent.
        """
        body = b"" if self._remote is not None else encode_batch(items, self.options)
        resends = Resends(self._settings.resend_after_timeout, stop)

        async def send() -> Callable[[], list[ImageVerdict]]:
            """The request; what reads its answer (after the slot is given back)."""
            self.requests += 1
            if self._remote is not None:  # --workers: sent and read in a worker process
                verdicts = await self._remote(items)
                return lambda: verdicts
            reply = await self._http.send(
                self._service,
                "POST",
                "/image/auditing",
                body=body,
                content_type="application/xml",
                timeout_s=self._settings.timeout,
                max_bytes=self._settings.max_response_bytes,
            )
            return lambda: read_answer(reply, items)

        async def attempt() -> list[ImageVerdict]:
            return (await budgeted(self.budget, stop, resends, send))()

        verdicts = await resends.run(
            items,
            lambda: retrying(self._retry, self._clock, attempt, on_retry=self._on_retry, stop=stop),
        )
        self.maybe_double += sum(v.maybe_double for v in verdicts)
        return verdicts


def read_answer(reply: Reply, items: Sequence[AuditItem]) -> list[ImageVerdict]:
    """The verdicts of a batch answer; an unreadable one fails every image (it was billed:
    another try would bill again)."""
    try:
        return decode_results(reply.body, items)
    except (XmlError, ValueError) as exc:
        error = unreadable("audit", "audit answer", reply, exc)
        return fail_all(items, "unreadable-answer", str(error))


T = TypeVar("T")


async def budgeted(
    budget: AuditBudget,
    stop: anyio.Event | None,
    resends: Resends,
    send: Callable[[], Awaitable[T]],
) -> T:
    """One attempt of a request under `budget`: a slot and a turn (none once `stop` is set),
    a throttling answer shrinks the budget, a lost answer counts for the resend rule, a
    success grows the budget back. Shared by the batch and job clients."""
    async with await unless_set(stop, budget.slot) as sent_at:
        try:
            got = await send()
        except ThrottledError as exc:
            budget.rate.on_throttled(sent_at, exc.retry_after)
            raise
        except TransportError as exc:
            resends.lost_answer(exc)
            raise
    budget.rate.on_success()
    return got


class Resends:
    """The billing rule for a request whose answer may be lost, shared by every backend.

    A request that left and whose answer never came may have been billed: it is sent again
    at most `allowed` times (never after the stop), then its images fail with
    `timeout-maybe-billed`. `run` marks the images possibly billed twice: a lost answer and
    then another billed (or possibly billed) try."""

    def __init__(self, allowed: int, stop: anyio.Event | None) -> None:
        self._allowed = allowed
        self._stop = stop
        self.lost = 0  # attempts that left and whose answer never came

    def lost_answer(self, exc: TransportError) -> None:
        """Called for a transport failure (which the caller then re-raises to retry)."""
        if not exc.maybe_sent:
            return
        self.lost += 1
        if (self._stop is not None and self._stop.is_set()) or self.lost > self._allowed:
            raise MaybeBilled(exc) from exc

    async def run(
        self, items: Sequence[AuditItem], call: Callable[[], Awaitable[list[ImageVerdict]]]
    ) -> list[ImageVerdict]:
        answered = True
        try:
            verdicts = await call()
        except MaybeBilled as exc:
            answered = False
            verdicts = fail_all(items, "timeout-maybe-billed", str(exc.cause))
        if self.lost >= 2 or (self.lost and answered):
            verdicts = [replace(v, maybe_double=True) for v in verdicts]
        return verdicts


class MaybeBilled(RemoteError):
    """A request's answer was lost more often than `resend_after_timeout` allows a resend."""

    def __init__(self, cause: TransportError) -> None:
        super().__init__(cause.service, cause.message)
        self.cause = cause


def fail_all(items: Sequence[AuditItem], code: str, message: str) -> list[ImageVerdict]:
    """Every image of a request failed with `code` (final: only --retry-failed tries again)."""
    return [ImageVerdict(i.key, i.data_id, code=code, message=message) for i in items]
