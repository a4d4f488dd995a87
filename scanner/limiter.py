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
(additive increase) and raises the limit by 0.01% towards the configured ceiling, so a scan
converges on what the account allows and probes for more only slowly (a trip every ~100
successes when the ceiling is over the quota, each costing one retried request and 1%).

Storms. A cut that still saw real throughput (at least half the rate got through) tells what
the service allows: `allowed` keeps the lowest such rate. A storm (nearly nothing gets
through, for seconds or hours) drives the limit to the floor without teaching anything. Once
throttles stop, the limit climbs back towards 99% of `allowed`, doubling every
`RECOVERY_DOUBLING` seconds of quiet, so 30 s at the floor is forgotten within a minute (from
1 to 9.9 QPS in 27 s), while a quota that really is lower trips during the climb and becomes
the new `allowed`.
"""

from __future__ import annotations

import math
from collections import deque
from types import TracebackType

import anyio

from scanner.clock import Clock

WINDOW = 1.0  # seconds: the provider's QPS accounting
RECOVERY_DOUBLING = 8.0  # seconds of quiet per doubling of the limit after a storm
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
        self.allowed = rate  # what the service was seen to allow (cuts with real throughput)
        self._cut_limit = rate  # the limit the last cut set

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
            if got_through is None:  # the first second: nothing measured yet
                self.limit = max(self.floor, self.rate * 0.99)
                self.rate = max(self.floor, self.rate * 0.7)
            else:
                tripped = min(self.rate, max(got_through, self.rate / 2))
                if self._quota_signal(now):  # a quota, not a storm: remember the rate it let by
                    self.allowed = min(self.allowed, max(self.rate, self.floor))
                self.limit = self.rate = max(self.floor, tripped * 0.99)
            self._cut_at = now
            self._cut_limit = self.limit
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._next = max(self._next, now + pause)

    def on_success(self) -> None:
        now = self._clock.now()
        self._ok.append(now)
        self._prune(now)
        # After a storm, the limit climbs back towards what the service allowed, doubling per
        # RECOVERY_DOUBLING s of quiet; beyond that it probes slowly, so a quota that grew is
        # found again without tripping every few seconds.
        target = min(self.ceiling, self.allowed * 0.99)
        if self.limit < target:
            quiet = max(0.0, now - self._cut_at)
            climbed = self._cut_limit * 2 ** min(64.0, quiet / RECOVERY_DOUBLING)
            self.limit = max(self.limit, min(target, climbed))
        self.limit = min(self.ceiling, self.limit * 1.0001)
        self.rate = min(self.limit, self.rate + self.limit / 20)

    def _quota_signal(self, now: float) -> bool:
        """Whether, since the last cut, at least half the rate got through: the service lets
        this much through (a quota), rather than nothing at all (a storm)."""
        span = min(WINDOW, now - self._cut_at)
        since = sum(1 for t in self._ok if t > self._cut_at)
        return span > 0 and since >= 0.5 * self.rate * span

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
