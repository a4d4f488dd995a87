"""The strict token bucket and AIMD on a fake clock."""

from __future__ import annotations

import itertools

import anyio

from scanner.limiter import AuditBudget, RateLimiter
from tests.conftest import FakeClock


async def test_strict_spacing_and_no_burst_after_idle(clock: FakeClock) -> None:
    limiter = RateLimiter(10.0, clock)
    starts = []
    for _ in range(5):
        await limiter.acquire()
        starts.append(clock.now())
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [0.1] * 4
    clock.t += 60.0  # a long idle period
    burst = []
    for _ in range(3):
        await limiter.acquire()
        burst.append(clock.now())
    assert round(burst[1] - burst[0], 6) == 0.1  # no saved-up tokens
    assert round(burst[2] - burst[1], 6) == 0.1


async def test_throttle_cuts_and_recovers_to_the_learned_limit(clock: FakeClock) -> None:
    limiter = RateLimiter(20.0, clock)
    limiter.on_throttled(retry_after=3.0)
    assert limiter.rate == 14.0
    t0 = clock.now()
    await limiter.acquire()
    assert clock.now() - t0 >= 3.0  # Retry-After honoured
    assert limiter.limit == 20.0 * 0.99  # learned just under where it tripped
    for _ in range(25):
        limiter.on_success()
    assert 19.8 <= limiter.rate < 20.0  # back near the learned limit, not at the ceiling
    for _ in range(10000):
        limiter.on_success()
    assert limiter.rate == 20.0  # probing slowly found the ceiling again
    limiter.on_throttled()
    limiter.on_throttled()  # same window: counted, not halved again
    assert limiter.rate == 14.0
    assert limiter.throttled == 3
    for _ in range(40):
        clock.t += 60.0
        limiter.on_throttled()
    assert limiter.rate == limiter.floor == 1.0


async def test_budget_caps_in_flight(clock: FakeClock) -> None:
    budget = AuditBudget(2, 1000.0, clock)
    peak = 0
    gate = anyio.Event()

    async def work() -> None:
        nonlocal peak
        async with budget:
            peak = max(peak, budget.in_flight)
            await gate.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(work)
        await anyio.wait_all_tasks_blocked()
        assert budget.in_flight == 2
        gate.set()
    assert peak == 2
    assert budget.in_flight == 0
