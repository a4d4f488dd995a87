"""`cos-scanner demo`: an in-process emulator with a synthetic album, listed through the client.

Everything runs offline over real HTTP on loopback with the emulator's documented keys.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from scanner.clock import MonotonicClock
from scanner.config import CosSettings, Credentials
from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
    running,
    synthetic,
)
from scanner.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable


async def run_demo(objects: int, seed: int, out: Callable[[str], None]) -> int:
    state = EmulatorState(bucket=synthetic(objects, seed), seed=seed)
    async with running(state) as url:
        out(f"emulator: {objects} objects in {DEFAULT_BUCKET} at {url}")
        cos = CosSettings(bucket=DEFAULT_BUCKET, endpoint=url)
        creds = Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)
        by_ext: Counter[str] = Counter()
        total = pages = size = 0
        async with HttpClient(creds) as http:
            lister = Lister(http, cos, retry=RetryPolicy(), clock=MonotonicClock())
            async for page in lister.iter_pages():
                pages += 1
                for obj in page.objects:
                    total += 1
                    size += obj.size
                    name = obj.key.rsplit("/", 1)[-1]
                    by_ext[name.rsplit(".", 1)[-1].lower() if "." in name else "(none)"] += 1
    out(f"listed {total} objects ({size / 2**30:.1f} GiB) in {pages} pages")
    for ext, n in by_ext.most_common():
        out(f"  {ext:>8} {n:>7}")
    return 0
