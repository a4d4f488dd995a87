"""A long scan on temporary keys that expire every `--lifetime` seconds, against the emulator
over real HTTP: the keys come from the CVM metadata service (`cvm-role`) and, in a second
run, from STS `AssumeRoleWithWebIdentity` (`tke-oidc`); the scanner has no long-term key at
all. Each run lasts about `--seconds` (the album size and the audit budget are chosen for it).

Prints, per flow: exit code, wall seconds, images audited and failed, pairs handed out,
requests refused for an expired token (must be 0: every request went with a live one).
Exits 1 when a run did not end 0 with every image audited and none refused.

    .venv/bin/python bench/credentials_soak.py --seconds 180 --lifetime 20

`--smoke`: a few seconds with 3-second keys, both flows (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, parse, start_emulator, stats

ROLE_ARN = "qcs::cam::uin/100000000001:roleName/cos-scanner"
BATCH, QPS = 10, 5.0  # 50 images a second


def run(flow: str, args: argparse.Namespace, folder: Path) -> dict[str, object]:
    objects = int(args.seconds * BATCH * QPS)
    emulator, url = start_emulator(
        objects, 0.02, 7, "--token-lifetime", str(args.lifetime),
        "--web-identity-token", "soak-token",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env["HOME"] = str(folder)  # no profile file
    settings = f'provider = "{flow}"\n'
    if flow == "cvm-role":
        settings += f'metadata_endpoint = "{url}/latest/meta-data/"\n'
    else:
        token = folder / "token"
        token.write_text("soak-token")
        settings += f'sts_endpoint = "{url}/"\n'
        env.update(TKE_REGION="ap-guangzhou", TKE_PROVIDER_ID="tke-soak",
                   TKE_WEB_IDENTITY_TOKEN_FILE=str(token), TKE_ROLE_ARN=ROLE_ARN)  # fmt: skip
    config = folder / f"{flow}.toml"
    config.write_text(
        f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n'
        f"[audit]\nbatch_size = {BATCH}\nqps = {QPS}\nconcurrency = 4\n"
        f'[store]\npath = "{folder / flow}.db"\n[credentials]\n{settings}'
    )
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "scanner", "scan", "--config", str(config),
             "--summary", str(folder / "summary.json"),
             *(["--workers", str(args.workers)] if args.workers > 1 else [])],
            env=env, capture_output=True, text=True, timeout=args.seconds * 4 + 120,
        )  # fmt: skip
        seen = stats(url)
    finally:
        emulator.kill()
        emulator.wait()
    summary = json.loads((folder / "summary.json").read_text()) if done.returncode < 3 else {}
    return {
        "flow": flow,
        "exit": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "objects": objects,
        "listed": summary.get("listed"),
        "audited": summary.get("audited"),
        "skipped": summary.get("skipped"),
        "failed": summary.get("failed"),
        "pending": summary.get("pending"),
        "billed": seen["distinct_images"],
        "issued": sum(seen["credentials_issued"].values()),
        "expired_refused": seen["expired_tokens"],
        "stderr_tail": done.stderr.strip().splitlines()[-3:] if done.returncode else [],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="length of each scan")
    ap.add_argument("--lifetime", type=float, default=20.0, help="seconds each key pair lives")
    ap.add_argument("--workers", type=int, default=1, help="scan --workers")
    ap.add_argument("--flows", default="cvm-role,tke-oidc")
    args = parse(ap, seconds=8.0, lifetime=3.0)
    print(machine())
    print(f"scans of ~{args.seconds:g}s on keys living {args.lifetime:g}s, workers {args.workers}")
    ok = True
    for flow in args.flows.split(","):
        with tempfile.TemporaryDirectory(prefix="cos-scanner-soak-") as folder:
            row = run(flow, args, Path(folder))
        print(row)
        ok &= (
            row["exit"] == 0
            and row["listed"] == row["objects"]
            and row["failed"] == 0
            and row["pending"] == 0
            and row["expired_refused"] == 0
        )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
