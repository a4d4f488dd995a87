"""`scan --dry-run` is exact: its estimate equals what the scan then sends and bills.

Each case runs the dry run, then the scan with the same flags, against the same emulator, and
compares the estimate with the emulator's own counts: distinct images sent, units billed
(images x scenes) and LargeImageDetect compressions. On the code before this change the
estimate counted 1 scene per image whatever the config, every image of an unfinished scan
again, and ignored --incremental, --retry-failed and --max-images.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scanner.audit.policy import LARGE_IMAGE_BYTES
from scanner.config import AuditSettings, Config, ScanSettings
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.control import churn
from scanner.scan.dryrun import Estimate
from tests.helpers import assert_exact, config, estimate, estimate_json
from tests.helpers import scan_outcome as scan


@pytest.fixture
def album() -> EmulatorState:
    return EmulatorState(bucket=synthetic(3000, 1), seed=1)  # the demo album (make demo)


@pytest.mark.parametrize(
    ("audit", "scenes"),
    [
        ({"detect_type": "porn,ADS"}, 2),
        ({"detect_type": "all"}, 7),
        ({"billed_scenes": 5}, 5),  # the emulator's default policy has five scenes
        ({"detect_type": "Porn", "large_image_detect": True}, 1),
        ({"detect_type": "Porn,Ads,Illegal", "interval": 2, "max_frames": 3}, 3),
    ],
)
async def test_estimate_equals_billed(
    album: EmulatorState, tmp_path: Path, audit: dict[str, Any], scenes: int
) -> None:
    async with running(album) as url:
        cfg = config(url, tmp_path, **audit)
        est = await assert_exact(album, cfg, scenes)
    assert est.images > 2000


async def test_filters_and_max_images_are_counted(album: EmulatorState, tmp_path: Path) -> None:
    async with running(album) as url:
        cfg = config(url, tmp_path, detect_type="Porn,Ads")
        cfg = replace(
            cfg,
            scan=replace(
                cfg.scan,
                include=("albums/*",),
                exclude=("*IMG_00001*",),
                min_size=50_000,
                modified_after="2020-01-01T05:00:00",
            ),
        )
        est = await assert_exact(album, cfg, 2, max_images=700)
        assert est.capped
        assert {"not-included", "size-window"} <= set(est.skipped)
        # the rest of the paused scan: its audited objects are not counted again
        resumed = await assert_exact(album, cfg, 2)
        assert resumed.resumes is not None
        assert resumed.already_done >= 700


async def test_incremental_after_changes_counts_only_what_changed(
    album: EmulatorState, tmp_path: Path
) -> None:
    async with running(album) as url:
        cfg = config(url, tmp_path, detect_type="Porn,Ads")
        await scan(cfg)
        churn(album, change=0.03, add=0.02, delete=0.01, seed=3)
        est = await assert_exact(album, cfg, 2, mode="incremental")
        assert 0 < est.images < 200
        assert est.skipped["unchanged"] > 2000
        # a GIF option changes only the GIFs' verdicts; LargeImageDetect only the large images'
        gif_cfg = replace(cfg, audit=replace(cfg.audit, interval=3, large_image_detect=True))
        est = await assert_exact(album, gif_cfg, 2, mode="incremental")
        sent = album.stats.sent
        gifs = {k for k in sent if k.lower().endswith(".gif")}
        large = {k for k in sent if album.bucket.objects[k].size > LARGE_IMAGE_BYTES}
        assert set(sent) == gifs | large  # not one small JPEG, PNG, ... re-audited
        assert gifs
        assert large


async def test_retry_failed_and_finished_scan(album: EmulatorState, tmp_path: Path) -> None:
    async with running(album) as url:
        cfg = config(url, tmp_path, detect_type="Porn")
        cfg = replace(cfg, scan=replace(cfg.scan, max_attempts=1))
        album.faults.image_failure_rate = 0.05  # retryable -65010 failures
        await scan(cfg)
        album.faults.image_failure_rate = 0.0
        nothing = await estimate(cfg)
        assert nothing.nothing
        assert nothing.images == 0
        await assert_exact(album, cfg, 1, mode="retry-failed")
        assert len(album.stats.sent) > 50


async def test_unknown_scenes_say_so_and_give_the_range(
    album: EmulatorState, tmp_path: Path
) -> None:
    async with running(album) as url:
        cfg = config(url, tmp_path, unit_price=0.01)
        data = estimate_json(await estimate(cfg), cfg)
    assert data["scenes_per_image"] is None
    assert data["billed_units"] is None
    assert data["billed_units_range"] == [data["images"], 7 * data["images"]]
    assert data["price"] is None


def test_price_is_unknown_without_a_unit_price() -> None:
    cfg = Config(audit=AuditSettings(detect_type="Porn,Ads"), scan=ScanSettings())
    est = Estimate("full", images=10)
    assert estimate_json(est, cfg)["price"] is None
    priced = replace(cfg, audit=replace(cfg.audit, unit_price=0.5))
    assert estimate_json(est, priced)["price"] == 10.0
