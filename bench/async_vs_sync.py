"""Synchronous batch audits vs `Async=1` submits plus job queries, by the numbers.

With `Async=1` a batch is answered at once with JobIds and each image's result is read with
the idempotent job query (reference 3.5): a lost answer would then cost nothing to recover.
This measures, against the emulator at a given latency, what each way costs per 100 images:
requests (each one under the same QPS budget), wall time for one batch, client CPU.

    .venv/bin/python bench/async_vs_sync.py --latency 0.1 --batches 20

`--smoke`: a tiny size, seconds, that the test suite runs (figures not checked).
"""

from __future__ import annotations

import argparse
import re
import time

import anyio
from common import machine, parse, start_emulator

from scanner.audit.codec import decode_results, encode_batch
from scanner.audit.policy import AuditOptions
from scanner.config import CosSettings, Credentials
from scanner.cos.client import HttpClient, Service, ci_service
from scanner.emulator import DEFAULT_BUCKET, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from scanner.errors import ServiceError
from scanner.models import AuditItem


async def query(http: HttpClient, service: Service, job: str) -> None:
    try:
        await http.send(service, "GET", f"/image/auditing/{job}")
    except ServiceError:  # an image the service refused has no job to read
        pass


async def run(url: str, batches: int) -> None:
    cos = CosSettings(bucket=DEFAULT_BUCKET, endpoint=url)
    from scanner.config import AuditSettings

    service = ci_service(cos, AuditSettings())
    async with HttpClient(Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)) as http:
        listing = await http.send(ci_service(cos, AuditSettings(endpoint=url)), "GET", "/")
        keys = [k for k in re.findall(rb"<Key>([^<]+)</Key>", listing.body)
                if k.endswith(b".jpg") and b"%" not in k][: 100 * batches]  # fmt: skip
        groups = [keys[i : i + 100] for i in range(0, len(keys), 100)]
        for mode in ("sync", "async"):
            requests = 0
            wall = cpu = 0.0
            for group in groups:
                items = [AuditItem(k.decode(), str(n)) for n, k in enumerate(group)]
                body = encode_batch(items, AuditOptions())
                t0, c0 = time.perf_counter(), time.process_time()
                if mode == "sync":
                    reply = await http.send(service, "POST", "/image/auditing", body=body,
                                            content_type="application/xml")  # fmt: skip
                    requests += 1
                    decode_results(reply.body, items)
                else:
                    body = body.replace(b"<Async>0</Async>", b"<Async>1</Async>")
                    reply = await http.send(service, "POST", "/image/auditing", body=body,
                                            content_type="application/xml")  # fmt: skip
                    requests += 1
                    job_ids = re.findall(rb"<JobId>([^<]+)</JobId>", reply.body)
                    async with anyio.create_task_group() as tg:
                        for job in job_ids:
                            tg.start_soon(query, http, service, job.decode())
                    requests += len(job_ids)
                wall += time.perf_counter() - t0
                cpu += time.process_time() - c0
            n = len(groups)
            print(f"{mode:>5}: {requests / n:6.1f} requests per 100 images, "
                  f"{wall / n * 1000:7.1f} ms per batch, "
                  f"{cpu / (n * 100) * 1e6:6.1f} us client CPU per image")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--batches", type=int, default=20)
    args = parse(ap, latency=0.01, batches=2)
    print(machine())
    proc, url = start_emulator(100 * args.batches + 500, args.latency, 1)
    try:
        print(f"emulator latency {args.latency:g} s per request")
        anyio.run(run, url, args.batches)
    finally:
        proc.kill()
    print("every request counts against the same QPS budget; the sync call needs one per batch")


if __name__ == "__main__":
    main()
