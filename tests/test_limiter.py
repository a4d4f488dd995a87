"""The strict token bucket and AIMD on a fake clock."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

import anyio
import pytest

from scanner.limiter import AuditBudget, RateLimiter
from tests.helpers import FakeClock


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


async def test_lag_delays_one_request_without_pushing_the_rest_back(clock: FakeClock) -> None:
    limiter = RateLimiter(20.0, clock)
    starts = []
    for n in range(400):
        if n % 3 == 0:
            clock.t += 0.02  # the event loop was busy: this wake-up is 20 ms late
        starts.append(await limiter.acquire())
    assert starts == sorted(starts)
    # No 1-second window (sliding) ever holds more than the budget...
    for i in range(len(starts) - 20):
        assert starts[i + 20] - starts[i] >= 1.0
    # ...yet lateness did not add up: over 20 s the rate stays within 2% of the budget.
    assert len(starts) / (starts[-1] - starts[0]) >= 20.0 * 0.98
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.025 - 1e-9  # never closer than half a slot


async def test_throttle_cuts_once_per_event_and_learns_what_got_through(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(80.0, clock)
    # One second at the ceiling; the quota lets 12 of them through.
    sent = [await limiter.acquire() for _ in range(80)]
    clock.t += 0.1  # their answers are back
    for _ in range(12):
        limiter.on_success()
    limiter.on_throttled(sent[-1])
    # 12/s got through, but one cut lowers the learned limit by at most half the rate.
    assert limiter.limit == limiter.rate == pytest.approx(40.0 * 0.99)
    # Answers to requests that left before the cut report the same event: counted only.
    for t in sent[-5:]:
        limiter.on_throttled(t)
    assert limiter.rate == pytest.approx(39.6)
    assert limiter.throttled == 6
    # A request sent after the cut still throttled: cut again.
    limiter.on_throttled(await limiter.acquire())
    assert limiter.rate == pytest.approx(19.8 * 0.99)
    after = await limiter.acquire()
    clock.t += 1.1  # a new window, in which again 12 got through
    for _ in range(12):
        limiter.on_success()
    limiter.on_throttled(after)
    assert limiter.limit == limiter.rate == pytest.approx(12.0 * 0.99)
    for _ in range(40):
        limiter.on_success()
    assert limiter.rate == limiter.limit < 12.5  # back to the limit, probing up slowly


async def test_retry_after_and_slow_probe_to_the_ceiling(clock: FakeClock) -> None:
    limiter = RateLimiter(20.0, clock)
    sent = await limiter.acquire()
    limiter.on_throttled(sent, retry_after=3.0)
    assert limiter.rate == 14.0
    assert limiter.limit == 20.0 * 0.99  # no full window seen yet: learned from the rate
    t0 = clock.now()
    await limiter.acquire()
    assert clock.now() - t0 >= 3.0  # Retry-After honoured
    for _ in range(25):
        limiter.on_success()
    assert 19.8 <= limiter.rate < 20.0  # back near the learned limit, not at the ceiling
    clock.t += 60.0  # a minute without a throttle: probing has found the ceiling again
    for _ in range(25):
        limiter.on_success()
    assert limiter.rate == 20.0
    for _ in range(40):
        limiter.on_throttled(clock.now())
        clock.t += 1.0
    assert limiter.rate == pytest.approx(2.5)  # a storm: >= 10% of the recent best (25 in 1 s)


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


async def test_success_log_keeps_one_window_only(clock: FakeClock) -> None:
    limiter = RateLimiter(50.0, clock)
    for _ in range(5000):  # 100 s of successes at 50/s, never throttled
        await limiter.acquire()
        limiter.on_success()
    assert len(limiter._ok) <= 51  # not one entry per request of the whole scan


def simulate(
    limiter: RateLimiter, clock: FakeClock, seconds: float, quota: Callable[[float], float]
) -> list[tuple[float, bool]]:
    """Drive `limiter` against a service allowing `quota(t)` requests per sliding second
    (0 = a storm: everything throttled), answers instantly; (time, throttled) per request."""
    seen: deque[float] = deque()
    log: list[tuple[float, bool]] = []

    async def run() -> None:
        end = clock.now() + seconds
        while clock.now() < end:
            sent = await limiter.acquire()
            while seen and seen[0] <= sent - 1.0:
                seen.popleft()
            throttled = len(seen) >= quota(sent)
            if throttled:
                limiter.on_throttled(sent)
            else:
                seen.append(sent)
                limiter.on_success()
            log.append((sent, throttled))

    anyio.run(run)
    return log


def rate_at(log: list[tuple[float, bool]], t: float) -> int:
    return sum(1 for s, th in log if t - 1.0 < s <= t and not th)


@pytest.mark.parametrize(
    ("ceiling", "storm", "after", "throttled"),
    [
        (10.0, 0.0, 10.0, 0.01),  # nothing gets through, then the quota is back
        (10.0, 0.7, 10.0, 0.01),  # a trickle gets through (looks like a quota while it lasts)
        (100.0, 0.0, 100.0, 0.01),  # the climb back is x10 at most, whatever the scale
        (10.0, 0.0, 5.0, 0.05),  # the service allows less than before: found, then probed
    ],
)
def test_a_storm_is_forgotten_within_a_minute(
    ceiling: float, storm: float, after: float, throttled: float
) -> None:
    # before: after a 30 s storm the learned rate stayed at the floor (1 QPS) for hours
    # (~22,000 successes to get back to 90% of the ceiling)
    clock = FakeClock(0.0)
    limiter = RateLimiter(ceiling, clock)

    def quota(t: float) -> float:
        return ceiling if t < 60 else (storm if t < 90 else after)

    log = simulate(limiter, clock, 400.0, quota)
    assert rate_at(log, 89.0) <= ceiling / 5  # the storm drove it down
    settled = [rate_at(log, t) for t in range(150, 200)]  # from 60 s after the storm
    assert sum(settled) / len(settled) >= 0.9 * after  # >= 90% of what the service allows
    late = [th for s, th in log if s >= 150.0]
    assert sum(late) / len(late) < throttled
