"""Retries: which errors, how long to wait, and when to give up.

Only `RemoteError.retryable` errors are retried; a `ThrottledError.retry_after` is honoured.
Waits are exponential with full jitter: uniform(0, min(wait_max, wait_initial * 2**(n-1))),
bounded both by the number of attempts and by a deadline for all attempts together. Throttling
answers are bounded by the deadline only: they say "wait", not "broken", and the audit budget
slows down on each of them until it fits the account's quota.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from scanner.clock import Clock
from scanner.errors import RemoteError, ThrottledError

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 6
    deadline: float = 300.0
    wait_initial: float = 0.5
    wait_max: float = 30.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt number `attempt` (1-based): full jitter."""
        ceiling = min(self.wait_max, self.wait_initial * 2 ** (attempt - 1))
        return (rng or random).uniform(0.0, ceiling)


async def retrying(
    policy: RetryPolicy,
    clock: Clock,
    call: Callable[[], Awaitable[T]],
    *,
    on_retry: Callable[[RemoteError, int, float], None] | None = None,
) -> T:
    """Run `call` until it succeeds, raises a fatal error, or the policy runs out.

    `on_retry(error, attempt, wait)` is told about each retry before the wait.
    """
    started = clock.now()
    attempt = failures = 0  # every try; the tries that failed other than by throttling
    while True:
        attempt += 1
        try:
            return await call()
        except RemoteError as exc:
            if not isinstance(exc, ThrottledError):
                failures += 1
            if not exc.retryable or failures >= policy.attempts:
                raise
            wait = policy.backoff(min(attempt, 30))
            if isinstance(exc, ThrottledError) and exc.retry_after is not None:
                wait = max(wait, exc.retry_after)
            if clock.now() + wait - started > policy.deadline:
                raise
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            await clock.sleep(wait)
