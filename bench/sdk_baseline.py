"""The script a user would write with the official SDK: list, batch-audit, save to SQLite.

list_objects pages (marker), image keys in batches of 100, ci_auditing_image_batch on a thread
pool of the same concurrency, every result inserted into SQLite. No resume, no budget: the
baseline for CPU per object, not a product.

    python bench/sdk_baseline.py --endpoint http://127.0.0.1:9000 --store /tmp/sdk.db
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from common import parse, start_emulator
from qcloud_cos import CosConfig, CosS3Client

IMAGES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".heif", ".heic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="", help="the emulator (with --smoke: its own)")
    ap.add_argument("--bucket", default="album-1250000000")
    ap.add_argument("--secret-id", default="AKIDemulator0000000000000000000000000")
    ap.add_argument("--secret-key", default="emulator-secret-key-000000000000")
    ap.add_argument("--store", default="", help="the SQLite file to write")
    ap.add_argument("--concurrency", type=int, default=16)
    args = parse(ap)
    if args.smoke:  # its own small emulator and store: the script still runs
        emulator, args.endpoint = start_emulator(600, 0.0, 1)
        with tempfile.TemporaryDirectory() as tmp:
            args.store = f"{tmp}/sdk.db"
            try:
                run(args)
            finally:
                emulator.kill()
        return
    if not args.endpoint or not args.store:
        ap.error("--endpoint and --store are needed (or --smoke)")
    run(args)


def run(args: argparse.Namespace) -> None:
    url = urlsplit(args.endpoint)
    conf = CosConfig(
        Region="ap-guangzhou",
        SecretId=args.secret_id,
        SecretKey=args.secret_key,
        IP=url.hostname,
        Port=url.port,
        Scheme=url.scheme,
        PoolConnections=args.concurrency,
        PoolMaxSize=args.concurrency,
    )
    client = CosS3Client(conf, retry=1)
    db = sqlite3.connect(args.store, check_same_thread=False)
    db.execute(
        "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, result TEXT, "
        "label TEXT, score TEXT, raw TEXT)"
    )
    lock = threading.Lock()

    def audit(keys: list[str]) -> None:
        resp = client.ci_auditing_image_batch(
            Bucket=args.bucket, Input=[{"Object": k, "DataId": str(i)} for i, k in enumerate(keys)]
        )
        rows = [
            (keys[int(j["DataId"])], j.get("Result"), j.get("Label"), j.get("Score"), json.dumps(j))
            for j in resp.get("JobsDetail", [])
        ]
        with lock:
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)", rows)
            db.commit()

    marker, batch, futures = "", [], []
    with ThreadPoolExecutor(args.concurrency) as pool:
        while True:
            page = client.list_objects(Bucket=args.bucket, Marker=marker, MaxKeys=1000)
            for item in page.get("Contents", []):
                key, size = item["Key"], int(item["Size"])
                if key.lower().endswith(IMAGES) and 0 < size <= 5 * 1024 * 1024:
                    batch.append(key)
                    if len(batch) == 100:
                        futures.append(pool.submit(audit, batch))
                        batch = []
            if page["IsTruncated"] != "true":
                break
            marker = page["NextMarker"]
        if batch:
            futures.append(pool.submit(audit, batch))
        for f in futures:
            f.result()
    print(db.execute("SELECT COUNT(*) FROM results").fetchone()[0], "results")


if __name__ == "__main__":
    main()
