"""What the bench scripts share: the machine line, the emulator subprocess, a scanner config,
the credentials the emulator accepts, its stats, and `parse`: every script's `--smoke` size,
which the test suite runs so that a bench broken by a change fails CI."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import urllib.request
from importlib.metadata import version
from pathlib import Path
from typing import Any

from scanner.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

ENV = dict(
    os.environ, TENCENTCLOUD_SECRET_ID=DEFAULT_SECRET_ID, TENCENTCLOUD_SECRET_KEY=DEFAULT_SECRET_KEY
)


def parse(ap: argparse.ArgumentParser, **smoke: Any) -> argparse.Namespace:
    """The arguments, with `--smoke`: these values instead (a size that runs in seconds; its
    figures mean nothing, it proves the script still runs against today's code)."""
    ap.add_argument("--smoke", action="store_true", help="a tiny size, seconds (the suite runs it)")
    args = ap.parse_args()
    if args.smoke:
        for name, value in smoke.items():
            setattr(args, name, value)
    return args


def machine() -> str:
    libs = ", ".join(f"{n} {version(n)}" for n in ("aiohttp", "anyio", "aiosqlite"))
    return (
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{libs}; emulator and scanner in separate processes sharing the cores"
    )


def start_emulator(
    objects: int, latency: float, seed: int, *extra: str
) -> tuple[subprocess.Popen[str], str]:
    """`cos-scanner emulator` with a synthetic album, in its own process; and its URL."""
    argv = [sys.executable, "-m", "scanner", "emulator", "--port", "0", "--objects",
            str(objects), "--seed", str(seed), "--latency", str(latency), *extra]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"at (http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, match[1]


def write_config(path: Path, url: str, store: Path | str, **audit: Any) -> Path:
    """A scanner config for the emulator's bucket at `url`, with these [audit] settings."""
    settings = "".join(f"{k} = {json.dumps(v)}\n" for k, v in audit.items())
    path.write_text(
        f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n'
        f'[audit]\n{settings}[store]\npath = "{store}"\n'
    )
    return path


def stats(url: str, detail: bool = False) -> dict[str, Any]:
    query = "?detail=1" if detail else ""
    with urllib.request.urlopen(f"{url}/_emulator/stats{query}", timeout=10) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON to one of the emulator's control endpoints; its JSON answer."""
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=3600) as r:
        out: dict[str, Any] = json.load(r)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process itself (not its children), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
