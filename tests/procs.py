"""Helpers for tests that run cos-scanner as a real subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO


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
