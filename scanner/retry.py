"""Retries: which errors, how long to wait, and when to give up.

Only `RemoteError.retryable` errors are retried; a `ThrottledError.retry_after` is honoured.
Waits are exponential with full jitter: uniform(0, min(wait_max, wait_initial * 2**(n-1))),
bounded both by the number of attempts and by a deadline for all attempts together. Throttling
answers are bounded by the deadline only: they say "wait", not "broken", and the audit budget
slows down on each of them until it fits the account's quota.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from scanner.clock import Clock
from scanner.errors import AbandonedError, RemoteError, ThrottledError

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
    on_retry: Callable[[RemoteError, int, float], None] | None = None,
    stop: anyio.Event | None = None,
) -> T:
    """Run `call` until it succeeds, raises a fatal error, or the policy runs out.

    `on_retry(error, attempt, wait)` is told about each retry before the wait. Once `stop` is
    set nothing is retried: the error that would have been raises AbandonedError instead.
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
            if stop is not None and stop.is_set():
                raise AbandonedError(f"stopping: not retried after {exc}") from exc
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            await unless_set(stop, functools.partial(clock.sleep, wait))
