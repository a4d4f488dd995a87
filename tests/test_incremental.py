"""Nightly rescans (I4): only new/changed/retryable/re-policied keys are audited."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from pathlib import Path

import anyio

from scanner.config import Config, ScanSettings
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.control import churn
from scanner.emulator.rules import DEFAULT_SCENES, verdict_for
from scanner.emulator.state import Stats
from scanner.models import ObjectRef, Target
from scanner.scan.filter import ObjectFilter
from scanner.scan.progress import Progress
from scanner.store import Store
from tests.helpers import config, run_scan


async def run(cfg: Config, **kw: object) -> str:
    with anyio.fail_after(60):
        result = await run_scan(cfg, anyio.Event(), Progress(), **kw)
    return result.outcome


def auditable(state: EmulatorState, cfg: Config, keys: list[str]) -> list[str]:
    flt = ObjectFilter.from_settings(cfg.scan, cfg.audit)
    out = []
    for key in keys:
        obj = state.bucket.objects[key]
        ref = ObjectRef(
            key, obj.etag, obj.size, obj.last_modified.astimezone(UTC), obj.storage_class
        )
        if not flt.reason(ref):
            out.append(key)
    return out


async def test_churn_audits_exactly_new_and_changed(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(3000, 21), seed=21)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        assert await run(cfg) == "done"
        async with await Store.open(cfg.store.path) as store:
            known = set(await store.verdict_map(Target.of(cfg.cos)))
            first = await store.latest_scan(Target.of(cfg.cos))
        assert first is not None
        assert first.failed == 0  # so every key the store knows has a verdict
        changes = churn(state, change=0.03, add=0.02, delete=0.01, seed=7)
        state.stats = Stats()
        assert await run(cfg, mode="incremental") == "done"
        candidates = auditable(state, cfg, changes["changed"] + changes["added"])
        good = {
            k
            for k in candidates
            if not verdict_for(k, state.bucket.objects[k], scenes=DEFAULT_SCENES).code
        }
        assert set(state.stats.audits) == good
        assert sum(state.stats.audits.values()) + sum(state.stats.image_failures.values()) == len(
            candidates
        )
        async with await Store.open(cfg.store.path) as store:
            second = await store.latest_scan(Target.of(cfg.cos))
            assert second is not None
            assert second.mode == "incremental"
            assert second.listed == len(state.bucket)
            assert second.listed == second.audited + second.failed + second.skipped
            reasons = await store.skip_reasons(second.id)
            deleted = await store.deleted_keys(Target.of(cfg.cos), second.id)
        passing = auditable(state, cfg, list(state.bucket.keys()))
        assert reasons["unchanged"] == len(passing) - len(candidates)
        assert deleted == set(changes["deleted"]) & known
        assert len(deleted) > 0
        assert second.deleted == len(deleted)
        state.stats = Stats()
        assert await run(cfg, mode="incremental") == "done"
        assert state.stats.requests.get("audit", 0) == 0


async def test_policy_change_and_force_reaudit_everything(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(1200, 22), seed=22)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        assert await run(cfg) == "done"
        first = sum(state.stats.audits.values())
        state.stats = Stats()
        assert await run(cfg, mode="incremental") == "done"
        assert sum(state.stats.audits.values()) == 0
        changed = replace(cfg, audit=replace(cfg.audit, biz_type="stricter-policy"))
        assert await run(changed, mode="incremental") == "done"
        assert sum(state.stats.audits.values()) == first
        state.stats = Stats()
        assert await run(changed, mode="incremental") == "done"
        assert sum(state.stats.audits.values()) == 0
        assert await run(changed) == "nothing"
        assert await run(changed, force=True) == "done"
        assert sum(state.stats.audits.values()) == first


async def test_retry_failed_reaudits_exactly_the_failures(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(1000, 23), seed=23)
    async with running(state) as url:
        cfg = replace(config(url, tmp_path), scan=ScanSettings(batch_wait=0.05, max_attempts=1))
        state.faults.image_failure_rate = 0.1
        assert await run(cfg) == "done"
        async with await Store.open(cfg.store.path) as store:
            first = await store.latest_scan(Target.of(cfg.cos))
            assert first is not None
            assert await store.failure_codes(first.id) == {"-65010": first.failed}
        state.faults.image_failure_rate = 0.0
        state.stats = Stats()
        assert await run(cfg, mode="retry-failed") == "done"
        assert sum(state.stats.audits.values()) == first.failed
        state.stats = Stats()
        assert await run(cfg, mode="retry-failed") == "done"
        assert state.stats.requests.get("audit", 0) == 0
        assert await run(cfg, mode="incremental") == "done"
        assert state.stats.requests.get("audit", 0) == 0
