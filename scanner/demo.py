"""`cos-scanner demo`: an in-process emulator with a synthetic album and a little latency.

Everything runs offline over real HTTP on loopback with the emulator's documented keys. The
expected counts are computed from the emulator's rules and the scanner's filter, so the demo
can say whether the scan got every object right.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from scanner.config import (
    AuditSettings,
    Config,
    CosSettings,
    Credentials,
    Identity,
    ImsSettings,
    ScanSettings,
    StoreSettings,
)
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
    Faults,
    running,
    synthetic,
)
from scanner.emulator.rules import DEFAULT_SCENES, verdict_for
from scanner.models import ObjectRef
from scanner.scan.filter import ObjectFilter


@contextlib.asynccontextmanager
async def start_demo_emulator(
    objects: int, seed: int, latency: float
) -> AsyncIterator[tuple[EmulatorState, str]]:
    state = EmulatorState(
        bucket=synthetic(objects, seed), seed=seed, faults=Faults(latency=latency)
    )
    async with running(state) as url:
        yield state, url


def demo_config(url: str, store: Path, service: str = "ci") -> Config:
    return Config(
        cos=CosSettings(bucket=DEFAULT_BUCKET, endpoint=url),
        audit=AuditSettings(concurrency=8, qps=100.0, service=service),
        ims=ImsSettings(endpoint=url, concurrency=16, qps=200.0),
        scan=ScanSettings(batch_wait=0.2, progress_interval=2.0),
        store=StoreSettings(path=str(store)),
        identity=Identity(
            keys=Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY), keys_from="demo"
        ),
    )


def expected_counts(state: EmulatorState, config: Config) -> dict[str, int]:
    """What a correct scan of the emulated bucket records, from the rules alone."""
    flt = ObjectFilter.from_settings(config.scan, config.audit)
    counts = dict.fromkeys(("listed", "audited", "flagged", "review", "failed", "skipped"), 0)
    for key, obj in state.bucket.objects.items():
        if not key.startswith(config.cos.prefix):
            continue
        counts["listed"] += 1
        ref = ObjectRef(key, obj.etag, obj.size, obj.last_modified, obj.storage_class)
        if flt.reason(ref):
            counts["skipped"] += 1
            continue
        verdict = verdict_for(
            key, obj, scenes=DEFAULT_SCENES, large_image_detect=config.audit.large_image_detect
        )
        if verdict.code:
            counts["failed"] += 1
        else:
            counts["audited"] += 1
            counts["flagged"] += verdict.result == 1
            counts["review"] += verdict.result == 2
    return counts
