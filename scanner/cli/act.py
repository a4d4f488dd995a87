"""`cos-scanner act`: the plan, or the journaled run, of one action on selected verdicts."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from scanner.act.apply import ActProgress
from scanner.act.plan import quarantine_place
from scanner.act.run import ActRequest, ActResult, apply_act, plan_act, summary
from scanner.cli.commands import (
    EXIT_IMAGES_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    fail,
    load_config_of,
    log,
    log_retry,
    selection,
    spelled_labels,
    supervised,
)
from scanner.config import Config
from scanner.errors import ConfigError
from scanner.models import Target
from scanner.scan.progress import Progress
from scanner.store import ReportFilter, Store


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that go with one action only."""
    if args.to is not None and args.action != "quarantine":
        raise ConfigError("--to goes with quarantine")
    if args.overwrite and args.action != "restore":
        raise ConfigError("--overwrite goes with restore")
    if args.undo_run is not None and args.action != "restore":
        raise ConfigError("--run goes with restore")
    if args.all and args.action != "restore":
        raise ConfigError("--all goes with restore (other actions select with report filters)")


def read_keys(where: str) -> tuple[str, ...]:
    """`--keys FILE`: one key a line, or a CSV whose header has a `key` column (any case, such
    as a `report --format csv` export); `-` is standard input. Blank lines are not keys."""
    try:
        if where == "-":
            text = sys.stdin.buffer.read().decode("utf-8-sig")
        else:
            text = Path(where).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--keys {where!r}: {getattr(exc, 'strerror', None) or exc}") from None
    lines = text.splitlines()
    header = next(csv.reader(lines[:1]), []) if lines else []
    column = [i for i, name in enumerate(header) if name.strip().lower() == "key"]
    if column:
        rows = csv.reader(lines[1:])
        keys = tuple(row[column[0]] for row in rows if len(row) > column[0] and row[column[0]])
    else:
        keys = tuple(line for line in lines if line.strip())
    if not keys:
        raise ConfigError(f"--keys {where!r}: no keys in it")
    return keys


def _request(args: argparse.Namespace, config: Config) -> ActRequest:
    _check_flags(args)
    request = _selected(args, config)
    if args.keys is None:
        return request
    keys = read_keys(args.keys)
    digest = hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()
    return replace(request, where=replace(request.where, keys=digest), keys=keys)


def _selected(args: argparse.Namespace, config: Config) -> ActRequest:
    where = selection(args)
    if args.action == "quarantine" and not args.resume:
        if not (args.to or config.act.quarantine_to):
            raise ConfigError(
                "quarantine needs --to cos://bucket-appid/prefix/ (or [act] quarantine_to)"
            )
        place = quarantine_place(args.to or config.act.quarantine_to, Target.of(config.cos))
        return ActRequest("quarantine", where, place=place)
    if args.action == "restore":
        return _restore(args, where)
    if args.action == "delete" and args.apply and not args.confirm_delete:
        raise ConfigError("delete cannot be undone: add --confirm-delete to --apply")
    return ActRequest(args.action, where, resume=args.resume)


def _restore(args: argparse.Namespace, where: ReportFilter) -> ActRequest:
    """`act restore` needs a scope: a run to undo, report filters, or --all."""
    if args.undo_run is not None:
        return ActRequest("restore", ReportFilter(), undoes=args.undo_run, overwrite=args.overwrite)
    if where == ReportFilter() and not args.all and not args.resume and args.keys is None:
        raise ConfigError(
            "restore needs a scope: --run N (undo a run), report filters (--result, --label, "
            "--prefix, ...), --keys FILE, or --all (every action in effect)"
        )
    return ActRequest("restore", where, resume=args.resume, overwrite=args.overwrite)


async def _labels(config: Config, request: ActRequest) -> ActRequest:
    async with await Store.open(config.store.path) as store:
        target = Target.of(config.cos).id
        return replace(request, where=await spelled_labels(store, target, request.where))


def _result_text(result: ActResult) -> str:
    states = result.tally["states"]
    lines = [
        f"act run {result.run_id} ({result.action}{', resumed' if result.resumed else ''}): "
        f"{result.outcome}",
        "  " + ", ".join(f"{k} {v:,}" for k, v in sorted(states.items())),
    ]
    lines += [f"  {k}: {v:,}" for k, v in sorted(result.tally["reasons"].items())]
    return "\n".join(lines)


def run_act(args: argparse.Namespace) -> int:
    config = load_config_of(args, full=args.apply)
    request = _request(args, config)
    request = anyio.run(_labels, config, request)
    if not args.apply:
        plan = anyio.run(plan_act, config, request)
        print(json.dumps(plan.as_json()) if args.json else plan.text())
        return EXIT_OK

    progress = ActProgress()
    started = time.monotonic()

    def render(width: int) -> tuple[str, dict[str, Any]]:
        elapsed = time.monotonic() - started
        rate = f"{progress.done / elapsed:.1f}/s" if progress.done and elapsed >= 1 else "-"
        finished = progress.done + progress.skipped + progress.failed + progress.conflict
        share = ""
        if progress.total:
            share = f"{finished / progress.total:.0%} of {progress.total:,} | "
            if progress.done and elapsed >= 1:
                left = (progress.total - finished) / (finished / elapsed)
                share += f"ETA {left:,.0f}s | "
        line = (
            f"act {request.action}: {share}done {progress.done:,} | skipped "
            f"{progress.skipped:,} | conflict {progress.conflict:,} | failed {progress.failed:,}"
            f" | {rate}"
        )
        fields = {"event": "act_progress", "action": request.action, "done": progress.done,
                  "skipped": progress.skipped, "failed": progress.failed,
                  "conflict": progress.conflict, "total": progress.total}  # fmt: skip
        return line[:width], fields

    def work(stop: anyio.Event, _scan: Progress) -> Awaitable[ActResult]:
        return apply_act(config, request, stop, progress, on_retry=log_retry)

    result = anyio.run(supervised, config, work, render)
    if result is None:
        fail(
            "cos-scanner: aborted; the journal says where each object was: run act again to resume"
        )
        return EXIT_INTERRUPTED
    record = summary(result)
    log.info(
        "act run %d %s", result.run_id, result.outcome, extra={"event": "act_finish", **record}
    )
    print(json.dumps(record) if args.json else _result_text(result))
    if result.outcome == "interrupted":
        return EXIT_INTERRUPTED
    if result.tally["states"].get("failed"):
        fail(f"cos-scanner: act run {result.run_id} done, but some objects failed (see above)")
        return EXIT_IMAGES_FAILED
    return EXIT_OK
