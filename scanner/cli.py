"""The command line: subcommands, exit codes, logging setup and signals live here only.

Exit codes: 0 done (or paused at --max-images); 1 failed but resumable; 2 usage or config error;
75 another live scan holds the target; 130 interrupted (drained, resumable).
Errors are one line on stderr; `--verbose` adds the detail. Secrets never reach output.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import anyio

from scanner import __version__
from scanner.config import Config, load_config
from scanner.cos.client import HttpClient, cos_service
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_REGION,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
    Faults,
    KeyPair,
    from_folder,
    serve,
    synthetic,
)
from scanner.errors import (
    ConfigError,
    RemoteError,
    ScanBusyError,
    ScannerError,
    ThrottledError,
)
from scanner.models import ScanStatus
from scanner.pipeline import Progress
from scanner.report import status_json, status_table, summary_text, write_rows
from scanner.runner import DryRun, ScanResult, dry_run, scan_target, target_of
from scanner.store import ReportFilter, Store

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 75  # the target is leased by a live scan (EX_TEMPFAIL: try again later)
EXIT_INTERRUPTED = 130

log = logging.getLogger("scanner")


class UsageError(Exception):
    """Bad command-line usage (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message}")


def _emulator_args(sub: Any) -> None:
    p = sub.add_parser(
        "emulator",
        help="serve the local COS + CI emulator",
        description="Serve an emulator of the COS ListObjects and CI batch image auditing APIs.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 = any free)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--objects", type=int, default=10000, help="synthetic album size")
    src.add_argument("--root", type=Path, help="serve this folder as the bucket instead")
    p.add_argument("--seed", type=int, default=1, help="seed of the album and of the faults")
    p.add_argument(
        "--bucket", default=DEFAULT_BUCKET, help=f"bucket name (default {DEFAULT_BUCKET})"
    )
    p.add_argument("--region", default=DEFAULT_REGION, help=f"region (default {DEFAULT_REGION})")
    p.add_argument("--secret-id", default=DEFAULT_SECRET_ID, help="accepted SecretId")
    p.add_argument(
        "--secret-key",
        default=None,
        help="its SecretKey (default: the documented emulator key; or $EMULATOR_SECRET_KEY)",
    )
    p.add_argument("--session-token", default=None, help="require this session token")
    p.add_argument(
        "--token-expires-in",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the session token expires this long after start (negative: expired)",
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--qps-cap", type=float, default=0.0, help="audit requests/s before SlowDown")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500/503")
    p.add_argument("--reset-rate", type=float, default=0.0, help="fraction of dropped connections")
    p.add_argument(
        "--malformed-rate", type=float, default=0.0, help="fraction of broken XML bodies"
    )
    p.add_argument(
        "--image-failure-rate", type=float, default=0.0, help="per-image -65010 failures"
    )
    p.set_defaults(run=_run_emulator)


def _emulator_state(args: argparse.Namespace) -> EmulatorState:
    if args.root is not None:
        if not args.root.is_dir():
            raise ConfigError(f"--root {str(args.root)!r} is not a directory")
        bucket = from_folder(args.root)
    else:
        if args.objects < 0:
            raise ConfigError(f"--objects must be >= 0 (got {args.objects})")
        bucket = synthetic(args.objects, args.seed)
    key = args.secret_key or os.environ.get("EMULATOR_SECRET_KEY") or DEFAULT_SECRET_KEY
    expires = None if args.token_expires_in is None else time.time() + args.token_expires_in
    faults = Faults(
        latency=args.latency,
        qps_cap=args.qps_cap,
        error_rate=args.error_rate,
        reset_rate=args.reset_rate,
        malformed_rate=args.malformed_rate,
        image_failure_rate=args.image_failure_rate,
    )
    return EmulatorState(
        bucket=bucket,
        bucket_name=args.bucket,
        region=args.region,
        seed=args.seed,
        keys={args.secret_id: KeyPair(key, token=args.session_token, token_expires=expires)},
        faults=faults,
    )


def _run_emulator(args: argparse.Namespace) -> int:
    state = _emulator_state(args)
    gc.freeze()  # the album lives as long as the server: no full collection should walk it

    def ready(url: str) -> None:
        print(
            f"cos-scanner emulator: bucket {state.bucket_name} ({len(state.bucket)} objects) "
            f"in {state.region} at {url}",
            flush=True,
        )
        print(f"  point [cos] endpoint at {url}; stats at {url}/_emulator/stats", flush=True)

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, tg.cancel_scope)
            await serve(state, args.host, args.port, ready)

    try:
        anyio.run(run)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from exc
    return EXIT_OK


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config file (default: $COS_SCANNER_CONFIG, else ./config.toml if present)",
    )
    p.add_argument("--store", default=None, help="SQLite store path (overrides [store] path)")


def _scan_args(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="scan the configured target, or resume its unfinished scan",
        description="List the bucket, audit every image in batches under the configured limits "
        "and checkpoint every object in SQLite. Resumes an unfinished scan of the same target.",
    )
    _config_args(p)
    p.add_argument("--prefix", default=None, help="only keys under this prefix ([cos] prefix)")
    p.add_argument(
        "--max-images",
        type=int,
        default=None,
        metavar="N",
        help="bill at most N images in this run, then pause (resumable)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--incremental",
        action="store_true",
        help="nightly rescan: audit only new, changed, retryably failed or re-policied keys",
    )
    mode.add_argument(
        "--full", action="store_true", help="a full scan even if [scan] incremental is set"
    )
    mode.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-audit exactly the objects whose last attempt failed",
    )
    p.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="write the final summary JSON here (default: <store>.summary.json)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="start a new scan that re-audits everything (bills again)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list only: print images, bytes, skips, billable units, price, duration",
    )
    p.set_defaults(run=_run_scan)


def _status_args(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="progress of the current and past scans",
        description="Per scan: listed, audited, flagged, review, failed, skipped, "
        "pending, rate, elapsed and ETA.",
    )
    _config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object per scan)")
    p.add_argument("--limit", type=int, default=20, help="how many recent scans (default 20)")
    p.set_defaults(run=_run_status)


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _csv_words(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _since(text: str) -> float:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or date-time, got {text!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _report_args(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="export verdicts: csv, jsonl or a json summary",
        description="Export the current state of every key of the target (its latest verdict or "
        "failure, deletions, skips of the latest scan). Streams: constant memory at any size.",
    )
    _config_args(p)
    p.add_argument(
        "--format",
        choices=("csv", "jsonl", "json"),
        default="csv",
        help="csv or jsonl rows, or a json summary of totals (default csv)",
    )
    p.add_argument("--result", type=_csv_ints, default=(), help="only these Results, e.g. 1,2")
    p.add_argument("--label", type=_csv_words, default=(), help="only these Labels, e.g. Porn,Ads")
    p.add_argument("--min-score", type=int, default=None, help="only scores >= this")
    p.add_argument(
        "--state",
        type=_csv_words,
        default=(),
        help="only these states: audited,failed,skipped,deleted",
    )
    p.add_argument("--scan", type=int, default=None, help="only rows recorded by this scan id")
    p.add_argument(
        "--since",
        type=_since,
        default=None,
        help="only rows audited (or failed) at or after this ISO date/time",
    )
    p.add_argument("--out", type=Path, default=None, help="write here instead of stdout")
    p.add_argument(
        "--presign",
        type=int,
        default=None,
        metavar="SECONDS",
        help="add a signed GET URL per object, valid for SECONDS",
    )
    p.set_defaults(run=_run_report)


def _migrate_args(sub: Any) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply pending store migrations",
        description="Create the store if needed and bring its schema up to date "
        "(scan does this too).",
    )
    _config_args(p)
    p.set_defaults(run=_run_migrate)


def _demo_args(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="scan a synthetic album on an in-process emulator",
        description="Start the emulator in-process with a synthetic album and a little latency, "
        "run a full scan into a temporary store and print the summary.",
    )
    p.add_argument("--objects", type=int, default=3000, help="album size (default 3000)")
    p.add_argument("--seed", type=int, default=1, help="album seed")
    p.add_argument("--latency", type=float, default=0.02, help="emulator latency in seconds")
    p.set_defaults(run=_run_demo)


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get("COS_SCANNER_CONFIG")
    if env:
        return Path(env)
    return Path("config.toml") if Path("config.toml").is_file() else None


def _load(args: argparse.Namespace, *, full: bool) -> Config:
    overrides: dict[str, Any] = {}
    if args.store is not None:
        overrides["store.path"] = args.store
    if getattr(args, "prefix", None) is not None:
        overrides["cos.prefix"] = args.prefix
    return load_config(
        _config_path(args), os.environ, overrides, require_credentials=full, require_target=full
    )


def _progress_line(p: Progress) -> str:
    budget = p.budget
    extra = f" | in-flight {budget.in_flight} | qps {budget.rate.rate:.1f}" if budget else ""
    throttled = f" | throttled {budget.rate.throttled}" if budget and budget.rate.throttled else ""
    return (
        f"{p.phase}: listed {p.listed:,} | audited {p.audited:,} | flagged {p.flagged:,} | "
        f"review {p.review:,} | failed {p.failed:,} | skipped {p.skipped:,} | "
        f"{p.rate:.1f} img/s{extra}{throttled}"
    )


def _progress_fields(p: Progress) -> dict[str, Any]:
    budget = p.budget
    return {
        "event": "progress",
        "phase": p.phase,
        "listed": p.listed,
        "audited": p.audited,
        "flagged": p.flagged,
        "review": p.review,
        "failed": p.failed,
        "skipped": p.skipped,
        "requests": p.requests,
        "rate": round(p.rate, 2),
        "in_flight": budget.in_flight if budget else 0,
        "qps_budget": round(budget.rate.rate, 2) if budget else None,
        "throttled": budget.rate.throttled if budget else 0,
    }


async def _show_progress(progress: Progress, interval: float) -> None:
    """A live line on a terminal; a log line (or JSON event) every `interval` s otherwise."""
    if sys.stderr.isatty() and not _JSON_LOGS:
        try:
            while True:
                sys.stderr.write("\r\x1b[K" + _progress_line(progress))
                sys.stderr.flush()
                await anyio.sleep(0.5)
        finally:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
    while True:
        await anyio.sleep(interval)
        log.info("%s", _progress_line(progress), extra=_progress_fields(progress))


async def watch_signals(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop listing and drain. Second: abort at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop.is_set():
                log.warning("%s again: aborting; what was in flight stays pending", signum.name)
                scope.cancel()
                return
            log.warning("%s: draining in-flight batches; repeat to abort", signum.name)
            stop.set()


async def _supervised(
    config: Config, work: Callable[[anyio.Event, Progress], Awaitable[T]]
) -> T | None:
    """Run `work` beside the signal watcher and progress display; None if aborted."""
    stop = anyio.Event()
    progress = Progress()
    result: T | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals, stop, tg.cancel_scope)
        tg.start_soon(_show_progress, progress, config.scan.progress_interval)
        result = await work(stop, progress)
        tg.cancel_scope.cancel()
    return result


async def _summary(config: Config, result: ScanResult, run_seconds: float) -> str:
    async with await Store.open(config.store.path) as store:
        sid = result.status.id
        skips, failures, labels = (
            await store.skip_reasons(sid),
            await store.failure_codes(sid),
            await store.labels(sid),
        )
    return summary_text(
        result.status,
        outcome=OUTCOMES[result.outcome],
        skips=skips,
        failures=failures,
        labels=labels,
        run_seconds=run_seconds,
        run_audited=result.status.run_audited,
    )


OUTCOMES = {
    "done": "done",
    "nothing": "already done; nothing to audit (a finished scan is not billed again)",
    "paused": "paused at --max-images; run scan again to continue",
    "interrupted": "interrupted; in-flight batches were written; run scan again to resume",
}


def _exit_for(outcome: str) -> int:
    return EXIT_INTERRUPTED if outcome == "interrupted" else EXIT_OK


def scan_mode(args: argparse.Namespace, config: Config) -> tuple[str, bool]:
    """(mode, force) from the flags and the config default."""
    if getattr(args, "retry_failed", False):
        return "retry-failed", False
    if getattr(args, "force", False):
        return "full", True
    incremental = getattr(args, "incremental", False) or (
        config.scan.incremental and not getattr(args, "full", False)
    )
    return ("incremental" if incremental else "full"), False


async def _scan(
    config: Config,
    max_images: int | None,
    mode: str = "full",
    force: bool = False,
    summary_path: Path | None = None,
) -> int:
    started = time.monotonic()

    def work(stop: anyio.Event, progress: Progress) -> Awaitable[ScanResult]:
        return scan_target(
            config,
            stop,
            progress,
            max_images=max_images,
            mode=mode,
            force=force,
            on_retry=_log_retry,
        )

    result = await _supervised(config, work)
    if result is None:
        _fail("cos-scanner: aborted; what was in flight stays pending; run scan again to resume")
        return EXIT_INTERRUPTED
    seconds = time.monotonic() - started
    print(await _summary(config, result, seconds))
    record = {
        **status_json(result.status),
        "outcome": result.outcome,
        "run_seconds": round(seconds, 2),
    }
    log.info(
        "scan %d %s", result.status.id, result.outcome, extra={"event": "scan_finish", **record}
    )
    _write_summary(summary_path or Path(config.store.path + ".summary.json"), record)
    return _exit_for(result.outcome)


def _write_summary(path: Path, record: dict[str, Any]) -> None:
    """The final summary as JSON for monitoring, replaced atomically."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        log.warning("could not write the summary to %s: %s", path, exc.strerror or exc)


def _log_retry(exc: RemoteError, attempt: int, wait: float) -> None:
    event = "throttled" if isinstance(exc, ThrottledError) else "retry"
    level = logging.INFO if _JSON_LOGS else logging.DEBUG
    log.log(
        level,
        "%s: attempt %d failed (%s); retrying in %.2fs",
        exc.service,
        attempt,
        exc,
        wait,
        extra={
            "event": event,
            "service": exc.service,
            "attempt": attempt,
            "wait": round(wait, 3),
            "status": exc.status,
            "code": exc.code,
            "request_id": exc.request_id,
        },
    )


async def _dry(config: Config) -> int:
    def work(stop: anyio.Event, progress: Progress) -> Awaitable[DryRun]:
        return dry_run(config, progress, stop)

    report = await _supervised(config, work)
    if report is None:
        return EXIT_INTERRUPTED
    scenes = config.audit.scenes_per_image
    units = report.units(scenes)
    skips = ", ".join(f"{k} {v:,}" for k, v in report.skipped.most_common()) or "none"
    print(f"dry run of {target_of(config).id}: nothing audited, nothing written")
    print(f"  objects      {report.objects:>12,}   in {report.pages:,} pages")
    print(f"  images       {report.images:>12,}   {report.bytes / 2**30:,.2f} GiB")
    print(f"  skipped      {sum(report.skipped.values()):>12,}   {skips}")
    print(f"  billable     {units:>12,}   units ({scenes} scene(s) per image)")
    print(
        f"  price        {units * config.audit.unit_price:>12,.2f}   at [audit] unit_price "
        f"{config.audit.unit_price:g}"
    )
    seconds = report.seconds(config.audit.batch_size, config.audit.qps)
    print(
        f"  duration   >= {seconds / 3600:>10,.2f} h   at {config.audit.qps:g} requests/s "
        f"x {config.audit.batch_size} images"
    )
    return EXIT_OK


def _run_scan(args: argparse.Namespace) -> int:
    if args.max_images is not None and args.max_images < 1:
        raise ConfigError(f"--max-images must be >= 1 (got {args.max_images})")
    config = _load(args, full=True)
    if args.dry_run:
        return anyio.run(_dry, config)
    mode, force = scan_mode(args, config)
    return anyio.run(_scan, config, args.max_images, mode, force, args.summary)


def _run_status(args: argparse.Namespace) -> int:
    config = _load(args, full=False)

    async def read() -> list[ScanStatus]:
        async with await Store.open(config.store.path, readonly=True) as store:
            return await store.scans(args.limit)

    scans = anyio.run(read)
    if args.json:
        print(json.dumps([status_json(s) for s in scans], indent=2))
    elif not scans:
        print(f"no scans in {config.store.path}")
    else:
        print(status_table(scans))
    return EXIT_OK


_STATES = {"audited", "failed", "skipped", "deleted"}


def _report_filter(args: argparse.Namespace) -> ReportFilter:
    bad = set(args.state) - _STATES
    if bad:
        raise ConfigError(f"--state: unknown {sorted(bad)}; choose from {sorted(_STATES)}")
    if args.presign is not None and not 1 <= args.presign <= 7 * 86400:
        raise ConfigError(f"--presign must be 1..604800 seconds (got {args.presign})")
    return ReportFilter(
        results=args.result,
        labels=args.label,
        min_score=args.min_score,
        states=args.state,
        scan_id=args.scan,
        since=args.since,
    )


async def _report_target(store: Store, config: Config) -> str:
    if config.cos.bucket:
        return target_of(config).id
    targets = await store.targets()
    if len(targets) != 1:
        raise ConfigError(f"the store holds {len(targets)} targets: set [cos] bucket/region/prefix")
    return targets[0]


async def _report(config: Config, args: argparse.Namespace, out: TextIO) -> None:
    where = _report_filter(args)
    async with await Store.open(config.store.path, readonly=True) as store:
        target = await _report_target(store, config)
        if args.format == "json":
            totals = await store.report_totals(target, where)
            out.write(json.dumps({"target": target, **totals}, indent=2) + "\n")
            return
        if args.presign is None:
            await write_rows(store.iter_report(target, where), out, args.format)
            return
        if config.credentials is None:
            raise ConfigError("--presign needs TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY")
        async with HttpClient(config.credentials) as http:
            service = cos_service(config.cos)
            await write_rows(
                store.iter_report(target, where),
                out,
                args.format,
                lambda key: http.presign(service, key, args.presign),
            )


def _run_report(args: argparse.Namespace) -> int:
    config = _load(args, full=False)
    if args.out is None:
        anyio.run(_report, config, args, sys.stdout)
        return EXIT_OK
    partial = args.out.with_name(args.out.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            anyio.run(_report, config, args, out)
        partial.replace(args.out)
    except OSError as exc:
        raise ConfigError(f"--out {str(args.out)!r}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return EXIT_OK


def _run_migrate(args: argparse.Namespace) -> int:
    config = _load(args, full=False)

    async def migrate() -> int:
        async with await Store.open(config.store.path) as store:
            return await store.version()

    print(f"store {config.store.path}: schema version {anyio.run(migrate)}")
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from scanner.demo import demo_config, expected_counts, start_demo_emulator

    with tempfile.TemporaryDirectory(prefix="cos-scanner-demo-") as tmp:

        async def run() -> int:
            async with start_demo_emulator(args.objects, args.seed, args.latency) as (state, url):
                config = demo_config(url, Path(tmp) / "demo.db")
                print(
                    f"emulator: {len(state.bucket):,} objects in {state.bucket_name} at {url} "
                    f"(latency {args.latency:g}s); store {config.store.path}"
                )
                code = await _scan(config, None)
                async with await Store.open(config.store.path) as store:
                    status = await store.latest_scan(target_of(config))
                assert status is not None
                expected = expected_counts(state, config)
                got = {k: getattr(status, k) for k in expected}
                verdict = "yes" if got == expected else f"NO: expected {expected}"
                print(f"counts match the emulator's rules: {verdict}")
                stats = state.stats.as_json(False)
                print(
                    f"emulator billed {stats['audited_images']:,} images "
                    f"({stats['double_audited']} twice) in "
                    f"{stats['requests'].get('audit', 0):,} requests"
                )
                return code if got == expected else EXIT_FAILED

        return anyio.run(run)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cos-scanner",
        description="Bulk content moderation of a COS bucket "
        "with Tencent Cloud Infinite batch image auditing.",
    )
    parser.add_argument("--version", action="version", version=f"cos-scanner {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON event per line (for log pipelines)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_scan_args, _status_args, _report_args, _migrate_args, _demo_args, _emulator_args):
        add(sub)
    return parser


_JSON_LOGS = False
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = str(record.exc_info[1])
        return json.dumps(out, ensure_ascii=False, default=str)


def _setup_logging(verbose: bool, fmt: str = "text") -> None:
    global _JSON_LOGS
    _JSON_LOGS = fmt == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if _JSON_LOGS
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger("scanner")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    logging.getLogger("aiohttp").setLevel(logging.WARNING if verbose else logging.CRITICAL)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _fail(line: str) -> None:
    """The one line a user sees for an error (never a traceback)."""
    print(line.replace("\n", " "), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    _setup_logging(args.verbose, args.log_format)
    # Everything imported so far lives for the whole process: keep it out of the cyclic GC,
    # so a full collection walks only what the command allocates (on a scan, a few ms
    # instead of tens of ms of event-loop stall, which the audit budget's pacing feels).
    gc.freeze()
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        try:
            return run(args)
        except BaseExceptionGroup as group:
            raise _leaf(group) from group
    except ConfigError as exc:
        _fail(f"cos-scanner: config error: {exc}")
        return EXIT_USAGE
    except ScanBusyError as exc:
        _fail(f"cos-scanner: busy: {exc}")
        return EXIT_BUSY
    except ScannerError as exc:
        _fail(f"cos-scanner: {exc}")
        if args.verbose:
            log.exception("detail")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _fail("cos-scanner: interrupted")
        return EXIT_INTERRUPTED
