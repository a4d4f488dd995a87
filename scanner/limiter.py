"""The audit budget: a requests-per-second limit that never bursts, plus an in-flight cap.

Pacing. Request n is scheduled 1/rate after request n-1's slot, and no request leaves while
`ceil(rate)` others left within the last window (1 s plus a 10 ms margin for arrival jitter):
so no 1-second window, sliding or fixed, ever holds more than the budget, an idle period
never turns into a burst, and event-loop lag (decoding a large answer) delays one request
without pushing every later one back. Two requests are never closer than half a slot.

Adapting. A throttling answer to a request sent after the last cut cuts the rate (answers to
requests already in flight at a cut report the same event and only count). The cut sets the
rate and the learned limit to 99% of the rate that tripped, or of what actually got through
in the last window when that is lower (never less than half the rate per cut, so one throttle
while latency bound cannot collapse it); in the first second, with nothing measured yet, it
cuts to 70%. It pauses until Retry-After. Each success adds limit/20 back up to the limit
(additive increase), so a scan converges on what the account allows.

Probing and storms. The learned limit grows with the quiet time since the last cut: slowly
at first, then faster (cubic, as TCP CUBIC probes; it doubles after `PROBE_SECONDS` and is x9
after twice that), so right after a trip it stays near what the quota allowed, and after a
storm it is back at the ceiling within a minute. A storm (nothing, or a trickle, gets through)
cuts no lower than `STORM_FLOOR` of the best throughput seen in the last `BEST_HORIZON`
seconds, so the climb back is never more than x10, whatever the scale.
"""

from __future__ import annotations

import math
from collections import deque
from types import TracebackType

import anyio

from scanner.clock import Clock

WINDOW = 1.0  # seconds: the provider's QPS accounting
PROBE_SECONDS = 25.0  # quiet seconds after a cut for the limit to double (x9 in 50 s)
STORM_FLOOR = 0.1  # a storm cuts to no less than this share of the recent best throughput
BEST_HORIZON = 600.0  # seconds the best throughput is remembered
MARGIN = 0.01  # seconds added to the window for jitter between our send and its arrival


class RateLimiter:
    """Requests-per-second budget with AIMD; `acquire()` before each request."""

    def __init__(self, rate: float, clock: Clock, *, floor: float = 1.0) -> None:
        self.ceiling = rate
        self.rate = rate
        self.limit = rate  # learned: just under the rate that last tripped the quota
        self.floor = min(floor, rate)
        self._clock = clock
        self._next = clock.now()
        self._cut_at = float("-inf")
        self._started: float | None = None
        self._sent: deque[float] = deque()  # when the last int(rate) requests left
        self._ok: deque[float] = deque()  # when successes came back, last window only
        self._turn = anyio.Lock()
        self.throttled = 0
        self.waited = 0.0  # seconds requests spent waiting for their turn
        self._cut_limit = rate  # the limit the last cut set
        self._best = 0.0  # the best throughput (successes per window) seen recently
        self._best_at = float("-inf")

    async def acquire(self) -> float:
        """Wait for this request's turn; returns the time it leaves (for `on_throttled`)."""
        async with self._turn:
            period = 1.0 / self.rate
            now = self._clock.now()
            if self._started is None:
                self._started = now
            sent = self._sent
            allowed = max(1, math.ceil(self.rate * WINDOW - 1e-9))
            while len(sent) > allowed:
                sent.popleft()
            at = self._next
            if len(sent) == allowed:
                at = max(at, sent[0] + WINDOW + MARGIN)
            if sent:
                at = max(at, sent[-1] + period / 2)
            if at > now:
                self.waited += at - now
                await self._clock.sleep(at - now)
                now = max(self._clock.now(), at)
            sent.append(now)
            # Late by less than a slot: keep the schedule. Later (idle, or a long stall): start
            # a new schedule from now rather than let the missed slots out as a burst.
            self._next = at + period if now - at < period else now + period
            return now

    def on_throttled(self, sent_at: float, retry_after: float | None = None) -> None:
        """A request that left at `sent_at` was throttled."""
        self.throttled += 1
        now = self._clock.now()
        if sent_at >= self._cut_at:
            got_through = self._goodput(now)
            floor = self._storm_floor(now)
            if got_through is None:  # the first second: nothing measured yet
                self.limit = max(floor, self.rate * 0.99)
                self.rate = max(floor, self.rate * 0.7)
            else:
                tripped = min(self.rate, max(got_through, self.rate / 2))
                self.limit = self.rate = max(floor, tripped * 0.99)
            self._cut_at = now
            self._cut_limit = self.limit
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._next = max(self._next, now + pause)

    def on_success(self) -> None:
        now = self._clock.now()
        self._ok.append(now)
        self._prune(now)
        if len(self._ok) >= self._best or now - self._best_at > BEST_HORIZON:
            self._best, self._best_at = len(self._ok) / WINDOW, now
        # The limit grows with the quiet time since the last cut, slowly at first and then
        # faster (cubic, as TCP CUBIC probes): just after a cut it stays near the rate the
        # quota allowed, and after a storm it is back at the ceiling within a minute.
        quiet = max(0.0, now - self._cut_at)
        grown = self._cut_limit * (1.0 + (min(quiet, 3600.0) / PROBE_SECONDS) ** 3)
        self.limit = min(self.ceiling, max(self.limit, grown))
        self.rate = min(self.limit, self.rate + self.limit / 20)

    def _storm_floor(self, now: float) -> float:
        if now - self._best_at > BEST_HORIZON:
            return self.floor
        return max(self.floor, min(self.ceiling, STORM_FLOOR * self._best))

    def _goodput(self, now: float) -> float | None:
        """Successes per second over the last window, once a whole window has been seen."""
        self._prune(now)
        if self._started is None or now - self._started < WINDOW:
            return None
        return len(self._ok) / WINDOW

    def _prune(self, now: float) -> None:
        ok = self._ok
        while ok and ok[0] < now - WINDOW:
            ok.popleft()


class AuditBudget:
    """The in-flight cap and the rate budget that every audit request passes through.

    `async with budget as sent_at:` holds a slot; `sent_at` is when the request left.
    """

    def __init__(self, concurrency: int, qps: float, clock: Clock) -> None:
        self.slots = anyio.CapacityLimiter(concurrency)
        self.rate = RateLimiter(qps, clock)

    @property
    def in_flight(self) -> int:
        return self.slots.borrowed_tokens

    async def __aenter__(self) -> float:
        await self.slots.acquire()
        try:
            return await self.rate.acquire()
        except BaseException:
            self.slots.release()
            raise

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.slots.release()

    async def slot(self) -> _Held:
        """Wait for a slot and a turn (cancellable: nothing is held if cancelled); the
        returned context manager gives the send time and releases the slot on exit."""
        return _Held(self, await self.__aenter__())


class _Held:
    def __init__(self, budget: AuditBudget, sent_at: float) -> None:
        self._budget = budget
        self.sent_at = sent_at

    async def __aenter__(self) -> float:
        return self.sent_at

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._budget.slots.release()
