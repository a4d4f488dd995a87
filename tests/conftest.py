"""Shared fixtures: a real emulator on loopback, clients pointed at it, a fake clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from scanner.audit.client import AuditClient
from scanner.config import AuditSettings, CosSettings, Credentials
from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    Bucket,
    EmulatorState,
    running,
)
from scanner.limiter import AuditBudget
from scanner.retry import RetryPolicy

CREDS = Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)
FAST_RETRY = RetryPolicy(attempts=3, deadline=10.0, wait_initial=0.0, wait_max=0.0)


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)


@dataclass
class Emulator:
    state: EmulatorState
    url: str

    def cos(self, **kw: object) -> CosSettings:
        return CosSettings(bucket=DEFAULT_BUCKET, endpoint=self.url, **kw)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _scanner_logger() -> Iterator[None]:
    """The CLI's `setup_logging` points the "scanner" logger at the sys.stderr of the moment,
    which pytest closes after an in-process CLI test; later tests' log lines then print
    "--- Logging error ---". Put the logger back as it was after every test."""
    logger = logging.getLogger("scanner")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState(bucket=Bucket())


@pytest.fixture
async def emulator(state: EmulatorState) -> AsyncIterator[Emulator]:
    async with running(state) as url:
        yield Emulator(state, url)


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient(CREDS) as client:
        yield client


@pytest.fixture
def lister(http: HttpClient, emulator: Emulator, clock: FakeClock) -> Lister:
    return Lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock)


def make_auditor(
    http: HttpClient, emulator: Emulator, clock: FakeClock, **settings: object
) -> AuditClient:
    audit = AuditSettings(**settings)  # type: ignore[arg-type]
    budget = AuditBudget(audit.concurrency, 1000.0, clock)
    return AuditClient(http, emulator.cos(), audit, retry=FAST_RETRY, clock=clock, budget=budget)


@pytest.fixture
def auditor(http: HttpClient, emulator: Emulator, clock: FakeClock) -> AuditClient:
    return make_auditor(http, emulator, clock)
