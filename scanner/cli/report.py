"""`status` and `report`: read the store (read-only), print tables, JSON or csv/jsonl rows."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import heapq
import json
import logging
import os
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import anyio

from scanner.cli.commands import (
    EXIT_IO,
    EXIT_OK,
    fail,
    load_config_of,
    selection,
    spelled_labels,
)
from scanner.config import Config
from scanner.cos.client import HttpClient, cos_service
from scanner.cos.credentials import provider_of
from scanner.errors import ConfigError, echo
from scanner.export import csv_cell, write_frames, write_rows, write_users
from scanner.jobspend import job_columns, job_lines, job_spend
from scanner.lease import is_dead
from scanner.models import ScanStatus, Target, unsharded
from scanner.render import spend_of, status_json, status_table
from scanner.sources.urls import url_target
from scanner.store import ReportFilter, Store
from scanner.uploaders import user_of

log = logging.getLogger(__name__)
#: What `--excel` writes first: Excel reads a CSV in the locale's code page (GBK, 1252, ...)
#: unless it starts with the UTF-8 byte order mark.
BOM = "\ufeff"


def run_status(args: argparse.Namespace) -> int:
    config = load_config_of(args, full=False)
    stale_after = config.scan.lease_stale_after

    async def read() -> tuple[list[ScanStatus], dict[int, int | None], dict[str, Any],
                              dict[int, float], dict[int, Any]]:  # fmt: skip
        async with await Store.open(config.store.path, readonly=True) as store:
            scans = await store.scans(args.limit, target=await _chosen(store, args))
            expected = {
                s.id: await store.previous_listed(s.target, s.id)
                for s in scans
                if s.state != "done" and not s.listing_done
            }
            review = {t: await store.review_queue(t) for t in {s.target for s in scans}}
            jobs = {s.id: job_spend(await store.job_counts(s.id), config) for s in scans}
            running = [s for s in scans if s.state == "running"]
            newest = {s.target: s for s in sorted(running, key=_run_start)}  # the lease's
            beats: dict[int, float] = {}
            for s in running:
                lease = await store.lease_of(s.target) if newest[s.target] is s else None
                if (beat := _dead_since(lease, s, stale_after)) is not None:
                    beats[s.id] = beat
            return scans, expected, review, beats, jobs

    scans, expected, review, beats, jobs = anyio.run(read)
    scans = [dataclasses.replace(s, state="dead") if s.id in beats else s for s in scans]
    if args.json:
        rows = [
            status_json(s, expected.get(s.id), review_queue=review[s.target],
                        heartbeat_at=beats.get(s.id), audit=config.audit, jobs=jobs[s.id])
            for s in scans
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
    elif not scans:
        print(f"no scans in {config.store.path}")
    else:
        _print_status(scans, expected, beats, review, jobs)
    return EXIT_OK


def _print_status(
    scans: list[ScanStatus], expected: dict[int, int | None], beats: dict[int, float],
    review: dict[str, Any], jobs: dict[int, Any],
) -> None:  # fmt: skip
    """`status` for people: the table, each scan's jobs, each target's review queue."""
    print(status_table(scans, expected, beats))
    for s in scans:  # what its moderation jobs were billed, per class
        for line in job_lines(jobs[s.id]):
            print(f"scan {s.id}", *line.split())
    for target, r in sorted(review.items()):
        if r["reviewed"] or r["to_review"]:
            print(
                f"review of {target}: {r['reviewed']:,} reviewed (approve {r['approve']:,}, "
                f"block {r['block']:,}, skip {r['skip']:,}), {r['to_review']:,} to review"
            )
        if r["badcases_sent"] or r["badcases_pending"] or r["badcases_failed"]:
            print(
                f"wrong verdicts told to the service: {r['badcases_sent']:,} sent, "
                f"{r['badcases_pending']:,} waiting, {r['badcases_failed']:,} failed"
            )


def _run_start(scan: ScanStatus) -> float:
    return scan.run_started_at or scan.started_at


def _dead_since(
    lease: tuple[str, int, float] | None, scan: ScanStatus, stale_after: float
) -> float | None:
    """When a scan the store says is running last showed life, if its process is gone (no
    lease, a dead pid on this host, or a heartbeat older than the lease's staleness; of two
    running scans of a target, only the newest run can hold its lease); None while it runs."""
    if lease is None:
        return scan.updated_at
    host, pid, beat = lease
    if is_dead(host, pid) or time.time() - beat >= stale_after:
        return beat
    return None


_STATES = {"audited", "failed", "skipped", "deleted", "superseded"}


#: Labels the service documents (reference 3.3); a store may hold others, which count as known.
def _report_filter(args: argparse.Namespace) -> ReportFilter:
    bad = set(args.state) - _STATES
    if bad:
        raise ConfigError(f"--state: unknown {sorted(bad)}; choose from {sorted(_STATES)}")
    if args.presign is not None and not 1 <= args.presign <= 7 * 86400:
        raise ConfigError(f"--presign must be 1..604800 seconds (got {args.presign})")
    return dataclasses.replace(selection(args), states=args.state, history=args.history)


def _urls_target(args: argparse.Namespace) -> str | None:
    """The target id of `--urls FILE` (the list need not exist any more), or None."""
    if getattr(args, "urls", None) in (None, ""):
        return None
    if args.urls == "-":
        raise ConfigError("--urls -: name the list's file (a piped list is kept as "
                          "<store dir>/.cos-scanner-urls/<sha256>.txt)")  # fmt: skip
    return url_target(Path(args.urls)).id


async def _chosen(store: Store, args: argparse.Namespace) -> str | None:
    """The target `--urls FILE` or `--target ID` names (one the store holds), or None."""
    urls = _urls_target(args)
    if urls is not None or args.target is None:
        return urls
    targets = await store.targets()
    if args.target not in targets:
        held = ", ".join(targets[:5]) + (", ..." if len(targets) > 5 else "")
        raise ConfigError(f"--target {echo(args.target)}: not in {store.path} (it holds {held})")
    return str(args.target)


async def _report_target(store: Store, config: Config, args: argparse.Namespace) -> str:
    chosen = await _chosen(store, args)
    if chosen is not None:
        return chosen
    targets = await store.targets()
    if config.cos.bucket:
        whole = Target.of(config.cos).id
        shards = [t for t in targets if t != whole and unsharded(t) == whole]
        return shards[0] if whole not in targets and len(shards) == 1 else whole
    if not targets:
        raise ConfigError(f"{store.path} holds no scans yet")
    if len(targets) > 1:
        held = ", ".join(targets[:5]) + (", ..." if len(targets) > 5 else "")
        raise ConfigError(
            f"the store holds {len(targets)} targets ({held}): pick one with --target "
            "(or set [cos] bucket, region and prefix)"
        )
    return targets[0]


_SPEND_FIELDS = ("billed_images", "billed_units", "price", "currency", "saved_images",
                 "saved_units", "maybe_double", "videos", "video_frames", "voice_notes",
                 "sound_minutes", "documents", "document_pages", "jobs_price")  # fmt: skip


def _write_spend(
    target: str, by: str, rows: list[dict[str, Any]], config: Config,
    args: argparse.Namespace, out: TextIO,
) -> None:  # fmt: skip
    """`report --spend`: per period, images billed (units and price where known), images
    saved (copies and verdicts shared between scans), images possibly billed twice."""
    scenes = config.audit.scenes_per_image
    for row in rows:
        row.update(spend_of(row["billed_images"], config.audit))
        row["saved_units"] = None if scenes is None else row["saved_images"] * scenes
        row["jobs"] = job_spend(row.get("jobs", {}), config)
        row.update(job_columns(row["jobs"]))
    if args.format == "json":
        total = {"billed_images": sum(r["billed_images"] for r in rows),
                 "saved_images": sum(r["saved_images"] for r in rows),
                 "maybe_double": sum(r["maybe_double"] for r in rows)}  # fmt: skip
        total.update(spend_of(total["billed_images"], config.audit))
        doc = {"target": target, "by": by, "rows": rows, "total": total}
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    if args.format == "jsonl":
        out.writelines(json.dumps(r) + "\n" for r in rows)
        return
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow((by, *_SPEND_FIELDS))
    writer.writerows([csv_cell(r[by]), *(csv_cell(r[f]) for f in _SPEND_FIELDS)] for r in rows)


def _check_flags(args: argparse.Namespace, config: Config) -> None:
    """The flags that go only with others or with a setting."""
    if args.by_user and not config.scan.user_from_key:
        raise ConfigError(
            "--by-user needs [scan] user_from_key (a regex with a group named user, e.g. "
            "'^albums/(?P<user>[^/]+)/'), in the config or COS_SCANNER_SCAN_USER_FROM_KEY"
        )
    if args.frames and (args.by_user or args.spend or args.presign is not None):
        raise ConfigError("--frames goes alone (not with --by-user, --spend or --presign)")
    if args.excel and args.format != "csv":
        raise ConfigError("--excel goes with --format csv")
    if args.min_flagged and not args.by_user:
        raise ConfigError("--min-flagged goes with --by-user")
    if args.min_flagged < 0:
        raise ConfigError(f"--min-flagged must be >= 0 (got {args.min_flagged})")


async def _report(config: Config, args: argparse.Namespace, out: TextIO) -> None:
    _check_flags(args, config)
    stores = args.store if isinstance(args.store, list) else []
    if len(stores) > 1:
        await _merged_report(config, args, stores, out)
        return
    where = _report_filter(args)
    async with await Store.open(config.store.path, readonly=True) as store:
        if config.scan.user_from_key:
            await store.name_users(user_of(config.scan))
        target = await _report_target(store, config, args)
        where = await spelled_labels(store, target, where)
        if where.scan_id is not None and not await store.has_scan(where.scan_id):
            raise ConfigError(f"--scan {where.scan_id}: no such scan in {store.path} (status)")
        if args.excel:
            out.write(BOM)
        if args.by_user:
            users = await store.by_user(target, where, min_flagged=args.min_flagged)
            write_users(users, args.format, out)
            return
        if args.spend:
            _write_spend(target, args.by, await store.spend(target, args.by), config, args, out)
            return
        if args.frames:
            await write_frames(store.iter_report(target, where), out, args.format)
            return
        if args.format == "json":
            totals = await store.report_totals(target, where)
            out.write(json.dumps({"target": target, **totals}, indent=2) + "\n")
            return
        await _rows(config, args, store.iter_report(target, where), out)


async def _rows(
    config: Config, args: argparse.Namespace, rows: AsyncGenerator[list[tuple[Any, ...]], None],
    out: TextIO,
) -> None:  # fmt: skip
    """One row per key (csv, jsonl), with a presigned link each under --presign."""
    if args.presign is None:
        await write_rows(rows, out, args.format)
        return
    async with HttpClient(provider_of(config)) as http:
        service = cos_service(config.cos)
        expires = http.credentials.expires
        if expires is not None and expires < time.time() + args.presign:
            log.warning(
                "--presign: the links are signed with temporary keys (%s) and stop working "
                "when they expire, in %.0fs, before the %ds asked",
                http.credentials.source, expires - time.time(), args.presign,
            )  # fmt: skip
        await write_rows(
            rows, out, args.format, lambda key: http.presign(service, key, args.presign)
        )


async def _merged_report(
    config: Config, args: argparse.Namespace, paths: list[str], out: TextIO
) -> None:
    """`report --store A --store B ...`: the shards' stores as one report (rows merged in key
    order; with --format json, the totals added up)."""
    if args.by_user or args.presign is not None:
        raise ConfigError("--by-user and --presign read one store: give a single --store")
    where = _report_filter(args)
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(await Store.open(p, readonly=True)) for p in paths
        ]
        targets = [await _report_target(store, config, args) for store in stores]
        if len({unsharded(t) for t in targets}) > 1:
            raise ConfigError(f"the stores hold different targets: {sorted(set(targets))}")
        wheres = [await spelled_labels(s, t, where) for s, t in zip(stores, targets, strict=True)]
        if args.format == "json":
            totals: dict[str, Any] = {}
            for store, target, w in zip(stores, targets, wheres, strict=True):
                _add(totals, await store.report_totals(target, w))
            out.write(json.dumps({"target": unsharded(targets[0]), **totals}, indent=2) + "\n")
            return
        rows = _merge_rows(
            [s.iter_report(t, w) for s, t, w in zip(stores, targets, wheres, strict=True)]
        )
        if args.excel:
            out.write(BOM)
        await write_rows(rows, out, args.format)


def _add(into: dict[str, Any], more: dict[str, Any]) -> None:
    for name, value in more.items():
        if isinstance(value, dict):
            _add(into.setdefault(name, {}), value)
        else:
            into[name] = into.get(name, 0) + value


async def _merge_rows(
    sources: list[AsyncGenerator[list[tuple[Any, ...]], None]], chunk: int = 1000
) -> AsyncGenerator[list[tuple[Any, ...]], None]:
    """Rows of several key-ordered streams in key order (shards: disjoint keys)."""
    buffers: list[list[tuple[Any, ...]]] = [[] for _ in sources]
    heap: list[tuple[str, int, int]] = []  # (key, source, position in its buffer)

    async def refill(n: int) -> None:
        buffers[n] = await anext(sources[n], [])
        if buffers[n]:
            heapq.heappush(heap, (buffers[n][0][0], n, 0))

    for n in range(len(sources)):
        await refill(n)
    batch: list[tuple[Any, ...]] = []
    while heap:
        _, n, i = heapq.heappop(heap)
        batch.append(buffers[n][i])
        if i + 1 < len(buffers[n]):
            heapq.heappush(heap, (buffers[n][i + 1][0], n, i + 1))
        else:
            await refill(n)
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def run_report(args: argparse.Namespace) -> int:
    config = load_config_of(args, full=False)
    if args.out is None:
        return _report_to_stdout(config, args)
    out_path: Path = args.out
    if out_path.is_symlink() or (out_path.exists() and not out_path.is_file()):
        raise ConfigError(f"--out {str(out_path)!r} is not a regular file; not replacing it")
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            anyio.run(_report, config, args, out)
        partial.replace(out_path)
    except OSError as exc:
        fail(f"cos-scanner: cannot write {str(out_path)!r}: {exc.strerror or exc}")
        return EXIT_IO
    finally:
        partial.unlink(missing_ok=True)
    return EXIT_OK


def _report_to_stdout(config: Config, args: argparse.Namespace) -> int:
    try:
        anyio.run(_report, config, args, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `report | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a full disk, /dev/full, a closed terminal
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        fail(f"cos-scanner: cannot write the report: {exc.strerror or exc}")
        return EXIT_IO
    return EXIT_OK
