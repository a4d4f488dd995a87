"""Spend (issue 26, item 5): `report --spend` equals the emulator's billing to the unit, on
the demo album and after an incremental night; copies saved and the scan record's figures."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from scanner.cli import main
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.emulator.rules import DEFAULT_SCENES
from scanner.scan.progress import Progress
from tests.helpers import config, run_scan

SCENES = len(DEFAULT_SCENES)  # the scenes the emulator bills when no DetectType is sent


def spend(store: str, *extra: str) -> Any:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["report", "--store", store, "--spend", "--format", "json", *extra]) == 0
    return json.loads(out.getvalue())


def test_spend_equals_what_the_emulator_billed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what the report prices with: the scenes billed per image and the unit price
    monkeypatch.setenv("COS_SCANNER_AUDIT_BILLED_SCENES", str(SCENES))
    monkeypatch.setenv("COS_SCANNER_AUDIT_UNIT_PRICE", "0.0025")
    state = EmulatorState(bucket=synthetic(2000, 81, copies=0.2), seed=81)
    cfg_of: dict[str, Any] = {}

    async def night(mode: str) -> None:
        async with running(state) as url:
            cfg = config(url, tmp_path, billed_scenes=SCENES, unit_price=0.0025)
            cfg_of["cfg"] = cfg
            result = await run_scan(cfg, anyio.Event(), Progress(), mode=mode)
            assert result.outcome == "done"

    anyio.run(night, "full")
    store = str(tmp_path / "scan.db")
    first = spend(store)["total"]
    assert first["billed_images"] == sum(state.stats.audits.values())
    assert first["billed_units"] == state.stats.billed_units == SCENES * first["billed_images"]
    assert first["saved_images"] > 100  # the album's copies: each content paid once
    # a night later: new pictures, re-uploads of old ones, overwrites
    now = datetime.now(UTC)
    keys = sorted(k for k in state.bucket.objects if k.endswith(".jpg"))[:40]
    for n, key in enumerate(keys[:20]):
        state.bucket.put(key, StoredObject(etag_of(key, 9), 7000 + n, now))
    for n in range(30):
        state.bucket.put(f"new/{n}.jpg", StoredObject(etag_of(f"new/{n}.jpg"), 6000 + n, now))
    for n, key in enumerate(keys[20:30]):
        old = state.bucket.objects[key]
        state.bucket.put(f"again/{n}.jpg", replace(old, last_modified=now, content=key))
    anyio.run(night, "incremental")
    doc = spend(store)
    total = doc["total"]
    assert total["billed_images"] == sum(state.stats.audits.values())
    assert total["billed_units"] == state.stats.billed_units
    assert total["price"] == round(total["billed_units"] * 0.0025, 6)
    assert total["currency"] == "CNY"
    assert [r["scan"] for r in doc["rows"]] == [1, 2]
    assert doc["rows"][1]["billed_images"] == total["billed_images"] - first["billed_images"]
    assert doc["rows"][1]["saved_images"] >= 10  # the re-uploads
    by_day = spend(store, "--by", "day")
    assert [r["day"] for r in by_day["rows"]] == [now.strftime("%Y-%m-%d")]
    assert by_day["total"] == total
    assert spend(store, "--by", "month")["rows"][0]["month"] == now.strftime("%Y-%m")
    # the scan record says the same per scan (status --json, summary.json)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", "--store", store, "--json"]) == 0
    records = {r["scan_id"]: r for r in json.loads(out.getvalue())}
    assert records[2]["billed_images"] == doc["rows"][1]["billed_images"]
    assert records[1]["billed_images"] == first["billed_images"]
