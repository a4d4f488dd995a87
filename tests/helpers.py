"""What the tests share: the emulator's subprocesses and in-process fixtures' values, the test
configs, scans and dry runs through the scan's own plan, and checks of what a scan recorded.
No test imports another test module, `conftest` or `bench`: what two tests share lives here."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import anyio

from scanner.audit.client import AuditClient
from scanner.audit.policy import LARGE_IMAGE_BYTES, audit_options
from scanner.config import (
    AuditSettings,
    Config,
    CosSettings,
    Credentials,
    Identity,
    RetrySettings,
    ScanSettings,
    StoreSettings,
)
from scanner.config.window import Window
from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister, cos_budget
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
)
from scanner.emulator.state import Stats
from scanner.limiter import AuditBudget
from scanner.models import ScanStatus, Target
from scanner.retry import RetryPolicy
from scanner.scan.dryrun import Estimate, dry_run
from scanner.scan.plan import Mode, ScanPlan, ScanRequest, make_plan
from scanner.scan.progress import Progress
from scanner.scan.runner import ScanResult, scan_target
from scanner.sources.inputs import BUCKET, InventoryInput, ScanInput, UrlListInput
from scanner.sources.urls import UrlList
from scanner.store import Store

CREDS = Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)
FAST_RETRY = RetryPolicy(attempts=3, deadline=10.0, wait_initial=0.0, wait_max=0.0)
FAST_RETRY_SETTINGS = RetrySettings(attempts=10, deadline=30.0, wait_initial=0.01, wait_max=0.05)


# -- time ------------------------------------------------------------------------------------


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

    def wall(self) -> datetime:
        """Wall time that moves with the clock (from 2026-01-01 00:00 UTC at t = 0)."""
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)


# -- the in-process emulator -----------------------------------------------------------------


@dataclass
class Emulator:
    state: EmulatorState
    url: str

    def cos(self, **kw: object) -> CosSettings:
        return CosSettings(bucket=DEFAULT_BUCKET, endpoint=self.url, **kw)  # type: ignore[arg-type]


def make_lister(
    http: HttpClient, cos: CosSettings, *, retry: RetryPolicy, clock: Any, **kw: Any
) -> Lister:
    """A Lister with its own `[cos] qps` budget, as `open_input` gives a scan's listers."""
    return Lister(http, cos, retry=retry, clock=clock, budget=cos_budget(cos, clock), **kw)


def make_auditor(
    http: HttpClient, emulator: Emulator, clock: FakeClock, **settings: object
) -> AuditClient:
    audit = AuditSettings(**settings)  # type: ignore[arg-type]
    budget = AuditBudget(audit.concurrency, 1000.0, clock)
    return AuditClient(
        http, emulator.cos(), audit, retry=FAST_RETRY, clock=clock, budget=budget,
        options=audit_options(audit),
    )  # fmt: skip


# -- scans in this process, through the scan's own plan --------------------------------------


def config(url: str, tmp_path: Path, **audit: object) -> Config:
    settings = {"concurrency": 8, "qps": 500.0, **audit}
    return Config(
        cos=CosSettings(bucket=DEFAULT_BUCKET, endpoint=url, timeout=5.0),
        audit=AuditSettings(**settings),  # type: ignore[arg-type]
        scan=ScanSettings(batch_wait=0.05),
        retry=FAST_RETRY_SETTINGS,
        store=StoreSettings(path=str(tmp_path / "scan.db")),
        identity=Identity(keys=CREDS, keys_from="test"),
    )


def plan_of(
    cfg: Config,
    *,
    mode: str = "full",
    force: bool = False,
    max_images: int | None = None,
    urls: UrlList | Path | None = None,
    inventory: str | None = None,
    window: Window | None = None,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
) -> ScanPlan:
    """The plan of a `scan` with these flags (as the command line would ask)."""
    what: ScanInput = BUCKET
    if urls is not None:
        what = UrlListInput(urls.path if isinstance(urls, UrlList) else urls)
    elif inventory is not None:
        what = InventoryInput(inventory)
    request = ScanRequest(
        mode=Mode.FORCE if force else Mode(mode),
        input=what,
        shard=shard,
        window=window,
        workers=workers,
        max_images=max_images,
    )
    return make_plan(cfg, request)


async def run_scan(
    cfg: Config, stop: anyio.Event, progress: Progress, *, clock: Any = None,
    on_retry: Any = None, **flags: Any,
) -> ScanResult:  # fmt: skip
    """`scan` with these flags, in this process."""
    return await scan_target(plan_of(cfg, **flags), stop, progress, clock=clock,
                             on_retry=on_retry)  # fmt: skip


async def scan_outcome(cfg: Config, stop: anyio.Event | None = None, **flags: Any) -> str:
    """`run_scan` within 60 s: how it ended."""
    with anyio.fail_after(60):
        result = await run_scan(cfg, stop or anyio.Event(), Progress(), **flags)
    return result.outcome


async def run_dry(cfg: Config, progress: Progress, stop: anyio.Event, **flags: Any) -> Estimate:
    """`scan --dry-run` with these flags, in this process."""
    return await dry_run(plan_of(cfg, **flags), progress, stop)


async def estimate(cfg: Config, **flags: Any) -> Estimate:
    with anyio.fail_after(30):
        return await run_dry(cfg, Progress(), anyio.Event(), **flags)


def estimate_json(est: Estimate, cfg: Config, **flags: Any) -> dict[str, Any]:
    """The dry run's JSON, as `scan --dry-run --json` prints it."""
    plan = plan_of(cfg, **flags)
    return est.as_json(plan.config, plan.profile)


async def assert_exact(state: EmulatorState, cfg: Config, scenes: int, **flags: Any) -> Estimate:
    """Dry run, then the scan: the estimate is what the emulator was sent and billed."""
    est = await estimate(cfg, **flags)
    data = estimate_json(est, cfg, **flags)
    state.stats = Stats()
    await scan_outcome(cfg, **flags)
    sent = state.stats.sent
    assert est.images == len(sent)
    assert data["billed_units"] == scenes * len(sent)
    assert state.stats.billed_units == scenes * len(state.stats.audits)  # failures are free
    large = [k for k in sent if state.bucket.objects[k].size > LARGE_IMAGE_BYTES]
    assert data["large_image_units"] == (len(large) if cfg.audit.large_image_detect else 0)
    assert data["large_image_units"] == state.stats.large_images
    assert data["bytes"] == sum(state.bucket.objects[k].size for k in sent)
    return est


async def check_i1(cfg: Config, state: EmulatorState, max_double: int = 0) -> ScanStatus:
    """I1 exactly, from the rows and from the counters; nothing billed twice beyond
    `max_double` images (what was in flight when a run failed)."""
    async with await Store.open(cfg.store.path) as store:
        status = await store.latest_scan(Target.of(cfg.cos))
        assert status is not None
        counts = await store.state_counts(status.id)
        verdicts = await store.verdict_map(Target.of(cfg.cos))
    assert status.state == "done"
    assert status.listed == len(state.bucket)
    assert status.listed == status.audited + status.failed + status.skipped
    assert counts == {
        k: v
        for k, v in {
            "audited": status.audited,
            "failed": status.failed,
            "skipped": status.skipped,
        }.items()
        if v
    }
    assert len(verdicts) == status.audited
    stats = state.stats.as_json(False)
    assert stats["double_audited"] <= max_double, stats["double_audited_keys"]
    assert set(state.stats.audits) == set(verdicts)
    return status


# -- subprocesses: the emulator and the scanner ----------------------------------------------


def read_line(stream: IO[str], timeout: float) -> str:
    """One line from a subprocess pipe, or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            return stream.readline()
    raise AssertionError(f"no output within {timeout}s")


def start_emulator(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`cos-scanner emulator --port 0 ...` in a subprocess; returns it and its URL."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "scanner", "emulator", "--port", "0", *args]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    line = read_line(proc.stdout, 30)
    match = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
    if match is None:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"emulator did not start: {line!r}")
    return proc, match[1]


@contextlib.contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """`start_emulator(*args)` for the length of a `with`: its URL; killed afterwards."""
    proc, url = start_emulator(*args)
    with proc:
        try:
            yield url
        finally:
            proc.kill()


OBJECTS, SEED = 3000, 5
CONCURRENCY, BATCH = 2, 25
IN_FLIGHT = CONCURRENCY * BATCH
ENV = dict(
    os.environ,
    TENCENTCLOUD_SECRET_ID=DEFAULT_SECRET_ID,
    TENCENTCLOUD_SECRET_KEY=DEFAULT_SECRET_KEY,
    PYTHONUNBUFFERED="1",
)


def write_config(path: Path, url: str, store: Path, **audit: Any) -> Path:
    settings = {"concurrency": CONCURRENCY, "batch_size": BATCH, "qps": 30.0, **audit}
    lines = ["[cos]", 'bucket = "album-1250000000"', f'endpoint = "{url}"', "[audit]"]
    lines += [f"{k} = {v!r}" for k, v in settings.items()]
    lines += [
        "[scan]",
        "batch_wait = 0.1",
        "lease_stale_after = 30.0",
        "progress_interval = 60.0",
        "[retry]",
        "wait_initial = 0.01",
        "wait_max = 0.1",
        "[store]",
        f'path = "{store}"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def stats(url: str, detail: bool = False) -> dict[str, Any]:
    with urllib.request.urlopen(
        f"{url}/_emulator/stats{'?detail=1' if detail else ''}", timeout=5
    ) as r:
        data: dict[str, Any] = json.load(r)
    return data


def scan_process(cfg: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`cos-scanner scan --config CFG ...` as a subprocess, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scanner", "scan", "--config", str(cfg), *extra],
            stdout=out,
            stderr=out,
            env=ENV,
        )


def wait_until(
    check: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, f"scanner exited early with {proc.returncode}"
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def db_rows(store: Path, sql: str) -> list[Any]:
    with sqlite3.connect(store) as conn:
        return conn.execute(sql).fetchall()


def assert_done_whole(store: Path, objects: int) -> None:
    """A killed and resumed scan's store: done, I1 from its counters, SQLite intact."""
    state, listed, audited, failed, skipped = db_rows(
        store, "SELECT state, listed, audited, failed, skipped FROM scans"
    )[0]
    assert state == "done"
    assert listed == objects == audited + failed + skipped  # I1
    assert db_rows(store, "PRAGMA integrity_check") == [("ok",)]


def children(pid: int) -> list[int]:
    """The live child processes of `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def cli_config(tmp_path: Path, url: str, bucket: str = "album-1250000000", store: str = "") -> Path:
    """A config file for the command-line tests: the emulator, a price, three scenes."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[cos]\nbucket = "{bucket}"\nendpoint = "{url}"\n[audit]\nqps = 200.0\nunit_price = 0.01\n'
        f'detect_type = "Porn,Ads,Illegal"\n[retry]\nattempts = 2\nwait_initial = 0.01\n'
        f'wait_max = 0.01\n[store]\npath = "{store or tmp_path / "s.db"}"\n'
    )
    return path


def one_line(err: str) -> str:
    """The error: exactly one `cos-scanner:` line, last, and no traceback (log lines aside);
    several config problems come as a `... N problems:` line and one indented line each, all
    returned joined by newlines."""
    lines = err.strip().splitlines()
    errors = [n for n, line in enumerate(lines) if line.startswith("cos-scanner:")]
    assert len(errors) == 1, err
    block = lines[errors[0] :]
    assert len(block) == 1 or (
        block[0].endswith(" problems:") and all(line.startswith("  ") for line in block[1:])
    ), err
    assert "Traceback" not in err
    return "\n".join(block)


def sdk_client(
    url: str,
    secret_key: str = DEFAULT_SECRET_KEY,
    token: str | None = None,
    secret_id: str = DEFAULT_SECRET_ID,
) -> Any:
    """The official SDK's client pointed at an emulator (IP mode, reference 5)."""
    from qcloud_cos import CosConfig, CosS3Client

    parts = urlsplit(url)
    conf = CosConfig(
        Region="ap-guangzhou",
        SecretId=secret_id,
        SecretKey=secret_key,
        Token=token,
        IP=parts.hostname,
        Port=parts.port,
        Scheme="http",
    )
    return CosS3Client(conf, retry=0)
