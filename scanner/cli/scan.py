"""`scan` (and its dry run) and `demo`: a scan run under the signal watcher and the progress
display, its summary, metrics, nightly action and exit code."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import anyio

from scanner.act.apply import ActProgress
from scanner.act.plan import quarantine_place
from scanner.act.run import ActRequest, ActResult, apply_act
from scanner.act.run import summary as act_summary
from scanner.cli import logs
from scanner.cli.commands import (
    EXIT_FAILED,
    EXIT_IMAGES_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PAUSED,
    code_of,
    fail,
    load_config_of,
    log,
    log_retry,
    retry_digest,
    signals_deferred,
    supervised,
)
from scanner.cli.events import tell
from scanner.cli.scan_metrics import MetricsOut, keep_metrics, metrics_out_of, run_ended
from scanner.config import Config
from scanner.config.window import Window
from scanner.errors import ConfigError, ScanBusyError, ScannerError, leaf_error
from scanner.jobspend import job_spend
from scanner.metrics import ScanMetrics
from scanner.models import Target
from scanner.render import dry_run_text, shown_mode, status_json, summary_text
from scanner.scan.dryrun import Estimate, dry_run
from scanner.scan.plan import Mode, ScanPlan, ScanRequest, make_plan
from scanner.scan.progress import Progress
from scanner.scan.runner import ScanResult, abandon_unfinished, scan_target
from scanner.sources.inputs import BUCKET, InventoryInput, ScanInput, UrlListInput
from scanner.sources.shard import parse_shard
from scanner.sources.urls import spool_stdin, url_list_file
from scanner.store import ReportFilter, Store


async def _summary(config: Config, result: ScanResult, run_seconds: float) -> str:
    async with await Store.open(config.store.path) as store:
        sid = result.status.id
        skips, failures, labels = (
            await store.skip_reasons(sid),
            await store.failure_codes(sid),
            await store.labels(sid),
        )
        jobs = job_spend(await store.job_counts(sid), config)
    return summary_text(
        result.status,
        outcome=result.note or OUTCOMES[result.outcome],
        skips=skips,
        failures=failures,
        labels=labels,
        run_seconds=run_seconds,
        run_audited=0 if result.outcome == "nothing" else result.status.run_audited,
        scenes=config.audit.scenes_per_image,
        audit=config.audit,
        jobs=jobs,
    )


OUTCOMES = {
    "done": "done",
    "nothing": "finished earlier: a finished scan is not listed or billed again; for objects "
    "new or changed since, run scan --incremental",
    "paused": "paused at --max-images; run scan again to continue",
    "interrupted": "interrupted; in-flight batches were written; run scan again to resume",
}


def exit_for(result: ScanResult) -> int:
    """The exit code of a scan run that ended with `result`."""
    if result.outcome == "interrupted":
        return EXIT_INTERRUPTED
    if result.outcome == "paused":
        return EXIT_PAUSED
    if result.outcome == "done" and result.status.failed:
        return EXIT_IMAGES_FAILED
    return EXIT_OK


def scan_mode(args: argparse.Namespace, config: Config) -> Mode:
    """The mode from the flags and the config default."""
    if getattr(args, "retry_failed", False):
        return Mode.RETRY_FAILED
    if getattr(args, "force", False):
        return Mode.FORCE
    incremental = getattr(args, "incremental", False) or (
        config.scan.incremental and not getattr(args, "full", False)
    )
    return Mode.INCREMENTAL if incremental else Mode.FULL


async def _scan(
    plan: ScanPlan, summary_path: Path | None = None, metrics_out: MetricsOut | None = None
) -> int:
    started = time.monotonic()
    config = plan.config
    retry_digest.every = config.scan.progress_interval
    acted: list[ActResult] = []
    metrics = None
    if metrics_out is not None:
        metrics = ScanMetrics(plan.target.id, config.audit)
        if metrics_out.port is not None:
            metrics.serve(metrics_out.port)
    seen: list[Progress] = []

    async def work(stop: anyio.Event, progress: Progress) -> ScanResult:
        seen.append(progress)
        async with anyio.create_task_group() as tg:
            if metrics is not None and metrics_out is not None:
                every = config.scan.progress_interval
                tg.start_soon(keep_metrics, metrics, progress, metrics_out, every, config,
                              plan.target.id)  # fmt: skip
            result = await scan_target(plan, stop, progress, on_retry=log_retry)
            acts = config.act.on_flagged and not plan.urls  # a URL is not ours to make private
            if result.outcome == "done" and acts and not stop.is_set():
                done = await _on_flagged(config, result, stop)
                acted.extend([done] if done is not None else [])
            tg.cancel_scope.cancel()
        return result

    since = time.time()

    async def ended(code: int) -> None:
        await run_ended(config, plan.target.id, since, code, metrics, seen, metrics_out)

    try:
        result = await supervised(config, work)
    except (ScannerError, KeyboardInterrupt, BaseExceptionGroup) as exc:  # the metrics say
        leaf = leaf_error(exc)  # how it failed; then the error line and its exit code
        if isinstance(leaf, ScannerError | KeyboardInterrupt):
            with signals_deferred():
                await ended(code_of(leaf))
            await tell(config, plan.target.id, since, code_of(leaf), str(leaf)[:300])
        raise
    with signals_deferred():  # a signal now would cost the summary, not the scan: wait for it
        if result is None:
            await ended(EXIT_INTERRUPTED)
            fail("cos-scanner: aborted; what was in flight stays pending; run scan again to resume")
            return EXIT_INTERRUPTED
        await ended(exit_for(result))
        seconds = time.monotonic() - started
        done = acted[0] if acted else None
        code = await _finish_scan(config, result, seconds, done, summary_path)
    await tell(config, plan.target.id, since, code)  # webhooks: bounded, never failing the run
    return code


async def _finish_scan(
    config: Config,
    result: ScanResult,
    seconds: float,
    acted: ActResult | None,
    summary_path: Path | None,
) -> int:
    """The summary (printed, logged, written as JSON) and the exit code of a scan run. With
    --log-format json, stdout gets one JSON object for the run instead of the text table."""
    async with await Store.open(config.store.path, readonly=True) as store:
        queue = await store.review_queue(result.status.target)
        jobs = job_spend(await store.job_counts(result.status.id), config)
    record = {
        **status_json(result.status, review_queue=queue, audit=config.audit, jobs=jobs),
        "outcome": result.outcome,
        "run_seconds": round(seconds, 2),
    }
    if acted is not None:
        record["act"] = act_summary(acted)
    code = exit_for(result)
    _write_summary(summary_path or Path(config.store.path + ".summary.json"), record)
    if logs.json_logs:
        end = time.time()
        run = {"event": "run", "start": round(end - seconds, 3), "end": round(end, 3),
               "exit_code": code, "summary": record}  # fmt: skip
        print(json.dumps(run, ensure_ascii=False))
    else:
        print(await _summary(config, result, seconds))
        if acted is not None:
            print(f"  on_flagged  {config.act.on_flagged}: {record['act']['states']}")
    log.info(
        "scan %d %s", result.status.id, result.outcome, extra={"event": "scan_finish", **record}
    )
    if code == EXIT_IMAGES_FAILED:
        fail(
            f"cos-scanner: scan {result.status.id} done, but {result.status.failed:,} images "
            "failed (report --state failed; scan --retry-failed to try them again)"
        )
    elif code == EXIT_PAUSED:
        why = result.note or "paused at --max-images"
        fail(f"cos-scanner: scan {result.status.id} {why}; run scan to continue")
    return code


async def _on_flagged(config: Config, result: ScanResult, stop: anyio.Event) -> ActResult | None:
    """[act] on_flagged: the action on what this scan newly flagged (Result 1, score at least
    [act] min_score), journaled like any act run; None when another act run holds the target
    (its verdicts stay selected: the next nightly, or `act`, takes them)."""
    where = ReportFilter(results=(1,), min_score=config.act.min_score, scan_id=result.status.id)
    place = None
    if config.act.on_flagged == "quarantine":
        if not config.act.quarantine_to:
            raise ConfigError("act.on_flagged = quarantine needs act.quarantine_to")
        place = quarantine_place(config.act.quarantine_to, Target.of(config.cos))
    request = ActRequest(config.act.on_flagged, where, place=place)
    try:
        return await apply_act(config, request, stop, ActProgress(), on_retry=log_retry)
    except ScanBusyError as exc:
        log.warning("[act] on_flagged not applied now: %s", exc)
        return None


def _write_summary(path: Path, record: dict[str, Any]) -> None:
    """The final summary as JSON for monitoring, replaced atomically."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        log.warning("could not write the summary to %s: %s", path, exc.strerror or exc)


async def _dry(plan: ScanPlan, as_json: bool) -> int:
    def work(stop: anyio.Event, progress: Progress) -> Awaitable[Estimate]:
        return dry_run(plan, progress, stop)

    est = await supervised(plan.config, work)
    if est is None:
        return EXIT_INTERRUPTED
    data = est.as_json(plan.config, plan.profile)
    print(json.dumps(data) if as_json else dry_run_text(data, plan.config.audit))
    return EXIT_OK


def _check_flags(args: argparse.Namespace) -> None:
    """What is wrong with the flags alone, said before the config is read."""
    if args.max_images is not None and args.max_images < 1:
        raise ConfigError(f"--max-images must be >= 1 (got {args.max_images})")
    if args.json and not args.dry_run:
        raise ConfigError("--json goes with --dry-run (a scan's summary is in --summary)")
    if getattr(args, "abandon", False) and (args.dry_run or args.max_images is not None):
        raise ConfigError("--abandon only drops unfinished scans: it goes with no other action")


def scan_request(args: argparse.Namespace, config: Config) -> ScanRequest:
    """The `scan` command line as one checked value."""
    _check_flags(args)
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers must be 1..64 (got {args.workers})")
    shard = parse_shard(args.shard) if args.shard is not None else None
    if shard is not None and args.urls is not None:
        raise ConfigError("--shard does not go with --urls (a URL list is one process's)")
    if args.inventory is not None and args.urls is not None:
        raise ConfigError("--inventory and --urls are two inputs: give one")
    if args.urls is not None and args.prefix is not None:
        raise ConfigError("--urls and --prefix do not go together: a URL list has no prefix")
    return ScanRequest(
        mode=scan_mode(args, config),
        input=_input(args, config),  # after the checks: it may keep standard input on disk
        prefix=args.prefix,
        shard=shard,
        window=window_of(args, config),
        workers=args.workers,
        max_images=args.max_images,
        dry_run=args.dry_run,
    )


def run_scan(args: argparse.Namespace) -> int:
    _check_flags(args)
    config = load_config_of(args, full=True, prefix=False)
    request = scan_request(args, config)
    plan = make_plan(config, request)
    if getattr(args, "abandon", False):
        return anyio.run(_abandon, plan)
    if request.dry_run:
        return anyio.run(_dry, plan, args.json)
    return anyio.run(_scan, plan, args.summary, metrics_out_of(args))


async def _abandon(plan: ScanPlan) -> int:
    """`scan --abandon`: the target's unfinished scans dropped, each said."""
    dropped = await abandon_unfinished(plan)
    for scan, pending in dropped:
        print(
            f"scan {scan.id} ({shown_mode(scan)}, {scan.state}) abandoned: {pending:,} of its "
            f"{scan.listed:,} listed objects were not audited"
            + ("" if scan.listing_done else ", and its listing was not finished")
            + "; its verdicts stay"
        )
    if not dropped:
        print(f"{plan.target.id} has no unfinished scan: nothing to abandon")
    return EXIT_OK


def window_of(args: argparse.Namespace, config: Config) -> Window | None:
    """--window (or [scan] window): the daily hours of local time when audits are sent."""
    text = args.window if args.window is not None else config.scan.window
    return Window.parse(text) if text else None


def _input(args: argparse.Namespace, config: Config) -> ScanInput:
    """What the scan reads: `--urls FILE` (or `-`: standard input, kept beside the store),
    `--inventory MANIFEST`, or the bucket."""
    if args.inventory is not None:
        return InventoryInput(args.inventory)
    if args.urls is None:
        return BUCKET
    if args.urls == "-":
        return UrlListInput(spool_stdin(config.store.path))
    return UrlListInput(url_list_file(Path(args.urls)))  # said before anything is opened


def run_demo(args: argparse.Namespace) -> int:
    from scanner.demo import demo_config, expected_counts, start_demo_emulator

    with tempfile.TemporaryDirectory(prefix="cos-scanner-demo-") as tmp:

        async def run() -> int:
            async with start_demo_emulator(args.objects, args.seed, args.latency) as (state, url):
                config = demo_config(url, Path(tmp) / "demo.db", args.service)
                print(
                    f"emulator: {len(state.bucket):,} objects in {state.bucket_name} at {url} "
                    f"(latency {args.latency:g}s); store {config.store.path}"
                )
                plan = make_plan(config, ScanRequest())
                code = await _scan(plan, metrics_out=metrics_out_of(args))
                async with await Store.open(config.store.path) as store:
                    status = await store.latest_scan(Target.of(config.cos))
                assert status is not None
                expected = expected_counts(state, config)
                got = {k: getattr(status, k) for k in expected}
                verdict = "yes" if got == expected else f"NO: expected {expected}"
                print(f"counts match the emulator's rules: {verdict}")
                stats = state.stats.as_json(False)
                print(
                    f"emulator billed {stats['audited_images']:,} images "
                    f"({stats['double_audited']} twice) in "
                    f"{stats['requests'].get('audit', 0) + stats['requests'].get('ims', 0):,} "
                    f"{plan.profile.label} requests"
                )
                if got != expected:
                    return EXIT_FAILED
                if args.review:  # the emulator keeps serving the pictures meanwhile
                    from scanner.cli.review import default_reviewer, serve_review

                    await serve_review(config, "127.0.0.1", 8765, default_reviewer(), True)
                return EXIT_OK if code in (EXIT_OK, EXIT_IMAGES_FAILED) else code

        return anyio.run(run)
