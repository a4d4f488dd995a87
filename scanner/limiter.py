"""The audit budget: a strict token bucket for requests per second, plus an in-flight cap.

The bucket holds at most one token, so an idle period never turns into a burst (bursting
limiters are a known way to trip a provider's quota): request n may start no earlier than
1/rate after request n-1. A throttling answer cuts the rate to 70% (multiplicative decrease,
down to `floor`, at most once per calm period so a burst of throttled answers counts once),
pauses until its Retry-After, and learns a limit of 99% of the rate that tripped (a trip below
the learned limit lowers it by 10%). Each success adds limit/20 back up to that limit
(additive increase) and raises the limit by ceiling/10000 towards the configured ceiling, so a
scan converges on what the account allows and probes for more only slowly.
"""

from __future__ import annotations

from types import TracebackType

import anyio

from scanner.clock import Clock


class RateLimiter:
    """Requests-per-second budget with AIMD; `acquire()` before each request."""

    def __init__(self, rate: float, clock: Clock, *, floor: float = 1.0) -> None:
        self.ceiling = rate
        self.rate = rate
        self.limit = rate  # learned: just under the rate that last tripped the quota
        self.floor = min(floor, rate)
        self._clock = clock
        self._next = clock.now()
        self._calm_until = clock.now()
        self._turn = anyio.Lock()
        self.throttled = 0

    async def acquire(self) -> None:
        """Wait for this request's turn: 1/rate after the previous one actually left.

        Acquirers queue on a lock and each measures from the moment the previous one woke,
        not from its scheduled slot, so a late wake-up never squeezes the next request closer
        than 1/rate (such squeezes trip a provider's sliding window). The price: event-loop
        lag (decoding a large answer) adds to the spacing, so the rate runs a little under.
        """
        async with self._turn:
            now = self._clock.now()
            if self._next > now:
                await self._clock.sleep(self._next - now)
                now = max(self._clock.now(), self._next)
            self._next = now + 1.0 / self.rate

    def on_throttled(self, retry_after: float | None = None) -> None:
        """Halve the rate, at most once per window: the answers to requests already in flight
        when the quota tripped report the same event and must not halve it again."""
        self.throttled += 1
        now = self._clock.now()
        if now >= self._calm_until:
            # A trip below the learned limit (leftovers of the last burst still in the
            # provider's window) lowers it by 10%, not down to where it happened.
            self.limit = max(self.floor, max(self.rate, self.limit * 0.9) * 0.99)
            self.rate = max(self.floor, self.rate * 0.7)
            self._calm_until = now + max(2.0, 4.0 / self.rate)
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._next = max(self._next, now + pause)

    def on_success(self) -> None:
        # Climb back quickly to just under where the quota tripped; probe above it slowly, so a
        # quota that grew is found again without tripping every few seconds.
        self.limit = min(self.ceiling, self.limit + self.ceiling / 10000)
        self.rate = min(self.limit, self.rate + self.limit / 20)


class AuditBudget:
    """The in-flight cap and the rate budget that every audit request passes through."""

    def __init__(self, concurrency: int, qps: float, clock: Clock) -> None:
        self.slots = anyio.CapacityLimiter(concurrency)
        self.rate = RateLimiter(qps, clock)

    @property
    def in_flight(self) -> int:
        return self.slots.borrowed_tokens

    async def __aenter__(self) -> AuditBudget:
        await self.slots.acquire()
        try:
            await self.rate.acquire()
        except BaseException:
            self.slots.release()
            raise
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.slots.release()
