"""One contract, every audit backend: CI batch auditing and IMS ImageModeration.

Each test runs once per backend ([audit] service = "ci" | "ims") against the emulator over real
HTTP and a real SQLite store. The guarantees are the scanner's, not a backend's: I1 exactly,
verdicts equal to the emulator's rules, a stop drains and a resume completes without paying
twice, a nightly rescan of an unchanged bucket sends nothing, throttling is waited out,
retryable per-image failures are retried, a lost answer is counted as possibly billed twice,
bad credentials end the scan with one clear error and the store intact, one scan per target,
and `kill -9` at any point resumes with nothing lost.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from scanner.config import Config, Credentials, CredentialSettings, Identity, ImsSettings
from scanner.emulator import EmulatorState, Faults, running, synthetic
from scanner.emulator import Identity as Issuing
from scanner.emulator.rules import DEFAULT_SCENES, verdict_for
from scanner.errors import AuthError, ScanBusyError
from scanner.models import ObjectRef, Target
from scanner.scan.filter import ObjectFilter
from scanner.scan.progress import Progress
from scanner.store import Store
from tests.helpers import (
    check_i1,
    config,
    db_rows,
    emulator_process,
    run_scan,
    stats,
    wait_until,
    write_config,
)
from tests.helpers import scan_process as scan

BACKENDS = ["ci", "ims"]


def backend_config(backend: str, url: str, tmp_path: Path, **audit: object) -> Config:
    """The test config for `backend`: the same budget, batches of 20 for CI."""
    concurrency = int(audit.pop("concurrency", 8))  # type: ignore[call-overload]
    qps = float(audit.pop("qps", 500.0))  # type: ignore[arg-type]
    cfg = config(url, tmp_path, batch_size=20, concurrency=concurrency, qps=qps, **audit)
    if backend == "ims":
        ims = ImsSettings(endpoint=url, concurrency=concurrency, qps=qps, timeout=5.0)
        cfg = replace(cfg, audit=replace(cfg.audit, service="ims"), ims=ims)
    return cfg


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def rules(state: EmulatorState, cfg: Config) -> dict[str, tuple[int, str, int]]:
    """key -> (result, label, score) the emulator's rules give every key a scan audits."""
    flt = ObjectFilter.from_settings(cfg.scan, cfg.audit)
    out = {}
    for key, obj in state.bucket.objects.items():
        ref = ObjectRef(key, obj.etag, obj.size, obj.last_modified, obj.storage_class)
        if flt.reason(ref):
            continue
        v = verdict_for(key, obj, scenes=DEFAULT_SCENES, large_image_detect=True)
        if not v.code:
            out[key] = (v.result, v.label, v.score)
    return out


async def run(cfg: Config, stop: anyio.Event | None = None, **kw: object) -> str:
    with anyio.fail_after(90):
        result = await run_scan(cfg, stop or anyio.Event(), Progress(), **kw)
    return result.outcome


async def verdicts(cfg: Config) -> dict[str, tuple[int, str, int]]:
    async with await Store.open(cfg.store.path) as store:
        return {
            k: (r, label, s)
            for k, (r, label, s) in (await store.verdict_map(Target.of(cfg.cos))).items()
        }


async def test_full_scan_accounts_for_everything(backend: str, tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(600, 31), seed=31)
    async with running(state) as url:
        cfg = backend_config(backend, url, tmp_path)
        assert await run(cfg) == "done"
        await check_i1(cfg, state)
        got = await verdicts(cfg)
    assert got == rules(state, cfg)
    assert max(state.stats.audits.values()) == 1
    async with await Store.open(cfg.store.path) as store:
        status = await store.latest_scan(Target.of(cfg.cos))
    assert status is not None
    assert ("service=ims" in status.policy) == (backend == "ims")
    if backend == "ims":  # one image a request
        assert status.requests == len(got)
    else:  # batches of 20
        assert len(got) / 20 <= status.requests < len(got) / 10


async def test_keys_that_expire_mid_scan_cost_no_image(backend: str, tmp_path: Path) -> None:
    """Keys from the CVM metadata service that live 2 s and are, besides, revoked mid-scan:
    renewed ahead of expiry, a refused request renewed once and sent once more; every verdict
    as the rules say, nothing failed, nothing billed twice."""
    state = EmulatorState(
        bucket=synthetic(300, 37),
        seed=37,
        identity=Issuing(lifetime=2),
        faults=Faults(latency=0.01),
    )
    async with running(state) as url:
        qps = 4.0 if backend == "ci" else 80.0  # 300 images in about 4 s, two lifetimes
        cfg = backend_config(backend, url, tmp_path, concurrency=2, qps=qps)
        meta = CredentialSettings(provider="cvm-role", metadata_endpoint=url + "/latest/meta-data/")
        cfg = replace(cfg, credentials=meta, identity=Identity())
        stop, progress = anyio.Event(), Progress()

        async def revoke() -> None:
            await progress.changes.until(lambda: progress.audited >= 60)
            for pair in state.keys.values():  # every temporary pair stops working now
                if pair.token_expires is not None:
                    pair.token_expires = 0.0

        async with anyio.create_task_group() as tg:
            tg.start_soon(revoke)
            with anyio.fail_after(90):
                result = await run_scan(cfg, stop, progress)
        assert result.outcome == "done"
        await check_i1(cfg, state)
        assert await verdicts(cfg) == rules(state, cfg)
    assert state.stats.expired_tokens >= 1  # the revocation was met, and survived
    assert not state.stats.image_failures  # no image failed for it (IMS: a FileUrl re-signed)
    assert state.stats.credentials_issued["metadata"] >= 3
    assert max(state.stats.audits.values()) == 1


async def test_stop_drains_and_resume_completes(backend: str, tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(800, 32), seed=32, faults=Faults(latency=0.01))
    async with running(state) as url:
        cfg = backend_config(backend, url, tmp_path, concurrency=4)
        stop, progress = anyio.Event(), Progress()

        async def stop_early() -> None:
            await progress.changes.until(lambda: progress.audited >= 150)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_early)
            with anyio.fail_after(60):
                result = await run_scan(cfg, stop, progress)
        assert result.outcome == "interrupted"
        assert set(await verdicts(cfg)) == set(state.stats.audits)  # every billed answer kept
        assert await run(cfg) == "done"
        await check_i1(cfg, state)


async def test_incremental_rescan_sends_only_what_changed(backend: str, tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(500, 33), seed=33)
    async with running(state) as url:
        cfg = backend_config(backend, url, tmp_path)
        assert await run(cfg) == "done"
        state.stats.sent.clear()
        assert await run(cfg, mode="incremental") == "done"
        assert not state.stats.sent
        changed = sorted(rules(state, cfg))[:7]
        for n, key in enumerate(changed):
            state.bucket.touch(key, n + 1)
        assert await run(cfg, mode="incremental") == "done"
        assert set(state.stats.sent) == set(changed)


@pytest.mark.slow
async def test_throttling_and_image_failures_are_waited_out(backend: str, tmp_path: Path) -> None:
    cap = 60 if backend == "ims" else 4  # requests/s: IMS sends 20x the requests
    faults = Faults(qps_cap=cap, image_failure_rate=0.05, error_rate=0.03)
    state = EmulatorState(bucket=synthetic(400, 34), seed=34, faults=faults)
    async with running(state) as url:
        cfg = backend_config(backend, url, tmp_path, qps=2.0 * cap)
        assert await run(cfg) == "done"
        status = await check_i1(cfg, state)
        got = await verdicts(cfg)
    assert state.stats.faults["throttled"] > 0
    assert state.stats.faults["image_failure"] > 0
    assert status.failed == 0  # every retryable failure was retried to a verdict
    assert got == rules(state, cfg)


async def test_lost_answers_are_counted_as_possibly_billed_twice(
    backend: str, tmp_path: Path
) -> None:
    state = EmulatorState(bucket=synthetic(300, 35), seed=35, faults=Faults(truncate_rate=0.1))
    async with running(state) as url:
        cfg = backend_config(backend, url, tmp_path)
        assert await run(cfg) == "done"
        async with await Store.open(cfg.store.path) as store:
            status = await store.latest_scan(Target.of(cfg.cos))
    assert status is not None
    assert state.stats.faults["truncated"] > 0
    doubled = sum(n - 1 for n in state.stats.audits.values())
    assert 0 < doubled <= status.maybe_double  # every double bill was counted


async def test_bad_credentials_end_the_scan_with_the_store_intact(
    backend: str, tmp_path: Path
) -> None:
    state = EmulatorState(bucket=synthetic(300, 36), seed=36)
    async with running(state) as url:
        cfg = backend_config(backend, url, tmp_path)
        assert await run(cfg, max_images=40) == "paused"
        before = await verdicts(cfg)
        assert cfg.keys is not None
        keys = Credentials(cfg.keys.secret_id, "wrong")
        wrong = replace(cfg, identity=replace(cfg.identity, keys=keys))
        with pytest.raises(BaseException) as caught:  # noqa: PT011 - unwrapped below
            await run(wrong)  # the pending objects (audit) or the listing: the first refuses
        error = caught.value
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        assert isinstance(error, AuthError), error
        assert "\n" not in str(error)
        assert await verdicts(cfg) == before
        assert await run(cfg) == "done"
        await check_i1(cfg, state)


async def test_one_scan_per_target(backend: str, tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(400, 38), seed=38, faults=Faults(latency=0.02))
    async with running(state) as url:
        cfg = backend_config(backend, url, tmp_path, concurrency=2)
        outcomes: list[str] = []

        async def first() -> None:
            outcomes.append(await run(cfg))

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            with anyio.fail_after(30):
                await state.stats.changes.until(lambda: bool(state.stats.audits))
            with pytest.raises(ScanBusyError):
                await run(cfg)
        assert outcomes == ["done"]
        await check_i1(cfg, state)


@pytest.mark.slow
@pytest.mark.parametrize("service", BACKENDS)
def test_sigkill_at_three_points_then_resume(service: str, tmp_path: Path) -> None:
    store, log = tmp_path / "scan.db", tmp_path / "scan.log"
    with emulator_process("--objects", "900", "--seed", "39", "--latency", "0.02") as url:
        cfg = write_config(tmp_path / "c.toml", url, store, concurrency=2, batch_size=20)
        if service == "ims":
            text = cfg.read_text().replace("[audit]\n", '[audit]\nservice = "ims"\n')
            text += f'[ims]\nendpoint = "{url}"\nconcurrency = 4\nqps = 200.0\n'
            cfg.write_text(text)
        for n in (50, 250, 500):
            proc = scan(cfg, log)
            wait_until(lambda n=n: stats(url)["audited_images"] >= n, proc)  # type: ignore[misc]
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        proc = scan(cfg, log)
        assert proc.wait(timeout=120) == 0, log.read_text()
        s = stats(url, detail=True)
    ((state, listed, audited, failed, skipped),) = db_rows(
        store, "SELECT state, listed, audited, failed, skipped FROM scans"
    )
    assert state == "done"
    assert listed == 900 == audited + failed + skipped
    stored = {k for (k,) in db_rows(store, "SELECT key FROM verdicts")}
    assert stored == set(s["audits"])  # every billed image has its verdict
    in_flight = 3 * (4 if service == "ims" else 2 * 20)
    assert sum(n - 1 for n in s["audits"].values()) <= in_flight
