"""RetryPolicy and retrying() on a fake clock."""

from __future__ import annotations

import random

import pytest

from scanner.errors import AuthError, ServiceError, ThrottledError, TransportError
from scanner.retry import RetryPolicy, retrying
from tests.helpers import FakeClock


def test_backoff_is_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy(wait_initial=0.5, wait_max=4.0)
    rng = random.Random(1)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = [policy.backoff(attempt, rng) for _ in range(200)]
        assert 0 <= min(waits)
        assert max(waits) <= cap
        assert max(waits) > cap * 0.8  # it spreads over the whole range


async def test_retries_retryable_until_success(clock: FakeClock) -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransportError("cos", "boom")
        return "ok"

    assert await retrying(RetryPolicy(attempts=5), clock, flaky) == "ok"
    assert len(calls) == 3
    assert len(clock.sleeps) == 2


async def test_fatal_errors_are_not_retried(clock: FakeClock) -> None:
    async def denied() -> None:
        raise AuthError("cos", "no", status=403)

    with pytest.raises(AuthError):
        await retrying(RetryPolicy(attempts=5), clock, denied)
    assert clock.sleeps == []


async def test_attempts_bound(clock: FakeClock) -> None:
    seen: list[int] = []

    async def down() -> None:
        raise ServiceError("cos", "x", status=500, retryable=True)

    with pytest.raises(ServiceError):
        await retrying(
            RetryPolicy(attempts=4), clock, down, on_retry=lambda e, n, w: seen.append(n)
        )
    assert seen == [1, 2, 3]


async def test_throttling_is_bounded_by_patience_and_honours_retry_after(
    clock: FakeClock,
) -> None:
    async def throttled() -> None:
        raise ThrottledError("audit", "slow", retry_after=30.0)

    policy = RetryPolicy(attempts=100, deadline=100.0, patience=100.0)
    with pytest.raises(ThrottledError):
        await retrying(policy, clock, throttled)
    assert clock.sleeps == [30.0, 30.0, 30.0]  # a fourth wait would pass the patience


async def test_a_storm_longer_than_the_deadline_is_waited_out(clock: FakeClock) -> None:
    # before: a storm longer than [retry] deadline (300 s) ended the scan with exit 1
    calls = []

    async def storm() -> str:
        calls.append(clock.now())
        if clock.now() - calls[0] < 1800:  # half an hour of throttling
            raise ThrottledError("audit", "slow")
        return "ok"

    assert await retrying(RetryPolicy(deadline=300.0), clock, storm) == "ok"
    assert max(clock.sleeps) <= 2.0  # short waits: the budget paces, a backoff only idles


async def test_the_deadline_runs_from_the_first_failure(clock: FakeClock) -> None:
    answers: list[Exception] = [ThrottledError("audit", "slow")] * 400

    async def then_down() -> str:
        if answers:
            raise answers.pop(0)
        raise TransportError("audit", "reset")

    policy = RetryPolicy(attempts=1000, deadline=60.0, wait_initial=1.0, wait_max=1.0)
    with pytest.raises(TransportError):
        await retrying(policy, clock, then_down)
    # the 400 throttled tries did not use up the deadline: it ran from the first reset
    assert 59.0 < sum(clock.sleeps[400:]) <= 60.0


async def test_throttling_is_bounded_by_the_deadline_not_attempts(clock: FakeClock) -> None:
    calls = []

    async def busy() -> str:
        calls.append(1)
        if len(calls) < 10:
            raise ThrottledError("audit", "slow")
        return "ok"

    policy = RetryPolicy(attempts=3, deadline=100.0, wait_initial=0.1, wait_max=1.0)
    assert await retrying(policy, clock, busy) == "ok"
    assert len(calls) == 10


async def test_throttling_does_not_use_up_the_attempts(clock: FakeClock) -> None:
    answers: list[Exception] = [ThrottledError("audit", "slow")] * 5 + [
        TransportError("audit", "reset")
    ]

    async def flaky() -> str:
        if answers:
            raise answers.pop(0)
        return "ok"

    assert await retrying(RetryPolicy(attempts=2, deadline=1e6), clock, flaky) == "ok"
