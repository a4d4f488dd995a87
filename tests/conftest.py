"""Shared fixtures: a real emulator on loopback, clients pointed at it, a fake clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from scanner.audit.client import AuditClient
from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister
from scanner.emulator import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    Bucket,
    EmulatorState,
    running,
)
from tests.helpers import CREDS, FAST_RETRY, Emulator, FakeClock, make_auditor, make_lister


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
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's credentials in the environment, as a user's shell has them."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)


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
    return make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=clock)


@pytest.fixture
def auditor(http: HttpClient, emulator: Emulator, clock: FakeClock) -> AuditClient:
    return make_auditor(http, emulator, clock)
