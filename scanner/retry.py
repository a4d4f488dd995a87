"""Retries: which errors, how long to wait, and when to give up.

Only `RemoteError.retryable` errors are retried; a `ThrottledError.retry_after` is honoured.
Waits are exponential with full jitter: uniform(0, min(wait_max, wait_initial * 2**(n-1))),
bounded both by the number of attempts and by a deadline that runs from the first failure.
Throttling answers say "later", not "broken": they use up no attempt and no deadline, only a
separate `patience` (hours by default), their backoff is short (the audit budget, which slows
down on each of them, does the pacing), and a storm longer than the deadline does not end the
scan.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from scanner.clock import Clock
from scanner.config import RetrySettings
from scanner.errors import AbandonedError, OnRetry, RemoteError, ThrottledError

T = TypeVar("T")
THROTTLE_WAIT_MAX = 2.0  # seconds: after a throttle the budget paces; a long backoff only idles


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 6
    deadline: float = 300.0
    wait_initial: float = 0.5
    wait_max: float = 30.0
    patience: float = 21_600.0  # seconds one request may keep being throttled

    @classmethod
    def from_settings(cls, r: RetrySettings) -> RetryPolicy:
        return cls(
            attempts=r.attempts,
            deadline=r.deadline,
            wait_initial=r.wait_initial,
            wait_max=r.wait_max,
            patience=r.throttle_patience,
        )

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt number `attempt` (1-based): full jitter."""
        ceiling = min(self.wait_max, self.wait_initial * 2 ** (attempt - 1))
        return (rng or random).uniform(0.0, ceiling)


def _wait(
    policy: RetryPolicy,
    exc: RemoteError,
    attempt: int,
    now: float,
    started: float,
    failing_since: float | None,
) -> float | None:
    """How long to wait before the next try, or None when the policy says stop."""
    wait = policy.backoff(min(attempt, 30))
    if isinstance(exc, ThrottledError):
        wait = min(wait, THROTTLE_WAIT_MAX)
        if exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return None if now + wait - started > policy.patience else wait
    if failing_since is not None and now + wait - failing_since > policy.deadline:
        return None
    return wait


async def unless_set(event: anyio.Event | None, call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, given up (AbandonedError) as soon as `event` is set: for waits that cost
    nothing to abandon (a limiter's turn, a backoff, a listing request)."""
    if event is None:
        return await call()
    if event.is_set():
        raise AbandonedError("stopping: not sent")
    done: list[T] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        done.append(await call())
        tg.cancel_scope.cancel()
    if not done:
        raise AbandonedError("stopping: not sent")
    return done[0]


async def retrying(
    policy: RetryPolicy,
    clock: Clock,
    call: Callable[[], Awaitable[T]],
    *,
    on_retry: OnRetry | None = None,
    stop: anyio.Event | None = None,
) -> T:
    """Run `call` until it succeeds, raises a fatal error, or the policy runs out.

    `on_retry(error, attempt, wait)` is told about each retry before the wait. Once `stop` is
    set nothing is retried: the error that would have been raises AbandonedError instead.
    """
    started = clock.now()
    failing_since: float | None = None  # the first failure other than throttling
    attempt = failures = 0  # every try; the tries that failed other than by throttling
    while True:
        attempt += 1
        try:
            return await call()
        except RemoteError as exc:
            throttled = isinstance(exc, ThrottledError)
            if not throttled:
                failures += 1
                failing_since = clock.now() if failing_since is None else failing_since
            if not exc.retryable or failures >= policy.attempts:
                raise
            wait = _wait(policy, exc, attempt, clock.now(), started, failing_since)
            if wait is None:
                raise
            if stop is not None and stop.is_set():
                raise AbandonedError(f"stopping: not retried after {exc}") from exc
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            await unless_set(stop, functools.partial(clock.sleep, wait))
