"""A local emulator of the COS and CI endpoints cos-scanner calls (aiohttp.web).

Faithful to the real wire formats (reference/cos-ci-api.md), signatures checked, verdicts
deterministic (`rules`), faults injectable (`faults`), stats at GET /_emulator/stats. Shipped
in the package: users try the scanner and test their configs with it, and every test runs
against it over real HTTP on loopback.
"""

from __future__ import annotations

from scanner.emulator.app import STATE, build_app
from scanner.emulator.bucket import Bucket, from_folder, synthetic
from scanner.emulator.server import running, serve
from scanner.emulator.state import (
    DEFAULT_BUCKET,
    DEFAULT_REGION,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
    Faults,
    Identity,
    KeyPair,
)

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_REGION",
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "STATE",
    "Bucket",
    "EmulatorState",
    "Faults",
    "Identity",
    "KeyPair",
    "build_app",
    "from_folder",
    "running",
    "serve",
    "synthetic",
]
