"""The commands behind the command line: what each subcommand runs, its exit code, its output."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import anyio

from scanner.act.apply import ActProgress
from scanner.act.plan import quarantine_place
from scanner.act.run import ActRequest, ActResult, apply_act
from scanner.act.run import summary as act_summary
from scanner.cli import logs
from scanner.cli.progress import Render, scan_render, show_progress
from scanner.config import DETECT_TYPES, Config, describe_config, load_config
from scanner.cos.client import HttpClient, cos_service
from scanner.dryrun import Estimate, dry_run
from scanner.emulator import (
    DEFAULT_SECRET_KEY,
    Bucket,
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
    ThrottledError,
)
from scanner.metrics import ScanMetrics
from scanner.models import ScanStatus
from scanner.pipeline import Progress
from scanner.report import dry_run_text, status_json, status_table, summary_text, write_rows
from scanner.runner import ScanResult, scan_target, target_of
from scanner.store import ReportFilter, Store

T = TypeVar("T")


def fail(line: str) -> None:
    """The one line a user sees for an error (never a traceback); with --log-format json, a
    JSON event like every other line, so a log of JSON lines stays pure."""
    line = line.replace("\n", " ")
    if logs.json_logs:
        line = json.dumps({"event": "error", "message": line}, ensure_ascii=False)
    print(line, file=sys.stderr)


#: How a command ended; one table, in the README and `cos-scanner --help`.
EXIT_OK = 0  # done: every image audited (or nothing to do)
EXIT_FAILED = 1  # the scan failed (service, network, store): run it again to resume
EXIT_USAGE = 2  # bad flags, config file, environment or input
EXIT_IMAGES_FAILED = 3  # done, but some images failed (report --state failed; --retry-failed)
EXIT_PAUSED = 4  # paused at --max-images: run scan again to continue
EXIT_IO = 74  # cannot write the output (a full disk, /dev/full) (EX_IOERR)
EXIT_BUSY = 75  # the target is leased by a live scan (EX_TEMPFAIL: try again later)
EXIT_AUTH = 77  # credentials refused or permission denied (EX_NOPERM)
EXIT_INTERRUPTED = 130  # stopped by a signal after draining: run scan again to resume

EXIT_CODES = (
    (EXIT_OK, "done: every image audited, or nothing to do"),
    (EXIT_FAILED, "the scan failed (service, network, store); run it again to resume"),
    (EXIT_USAGE, "usage or config error (flags, config file, environment, input)"),
    (EXIT_IMAGES_FAILED, "done, but some images failed (report --state failed; --retry-failed)"),
    (EXIT_PAUSED, "paused at --max-images; run scan again to continue"),
    (EXIT_IO, "cannot write the output (a full disk, /dev/full)"),
    (EXIT_BUSY, "another live scan holds the target's lease; try again later"),
    (EXIT_AUTH, "credentials refused or permission denied"),
    (EXIT_INTERRUPTED, "interrupted by a signal after draining; run scan again to resume"),
)

log = logging.getLogger("scanner")


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
        bucket_acl="private" if args.private_bucket else "public-read",
        extra_buckets={name: Bucket() for name in args.extra_bucket},
    )


def run_emulator(args: argparse.Namespace) -> int:
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
    config: Config,
    work: Callable[[anyio.Event, Progress], Awaitable[T]],
    render: Render | None = None,
) -> T | None:
    """Run `work` beside the signal watcher and progress display (a scan's, unless `render`
    says what to show); None if aborted."""
    stop = anyio.Event()
    progress = Progress()
    result: T | None = None
    render = render or scan_render(progress, config.audit.scenes_per_image)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals, stop, tg.cancel_scope)
        tg.start_soon(show_progress, render, config.scan.progress_interval)
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
        run_audited=0 if result.outcome == "nothing" else result.status.run_audited,
    )


OUTCOMES = {
    "done": "done",
    "nothing": "already done; nothing to audit (a finished scan is not billed again)",
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


@dataclass(frozen=True, slots=True)
class MetricsOut:
    """Where a scan's metrics go: a Prometheus text file, an HTTP port, or both."""

    file: Path | None = None
    port: int | None = None


async def _keep_metrics(
    metrics: ScanMetrics, progress: Progress, out: MetricsOut, every: float
) -> None:
    while True:
        metrics.retries = _digest.total
        metrics.update(progress)
        if out.file is not None:
            metrics.write(str(out.file))
        await anyio.sleep(every)


async def _scan(
    config: Config,
    max_images: int | None,
    mode: str = "full",
    force: bool = False,
    summary_path: Path | None = None,
    metrics_out: MetricsOut | None = None,
) -> int:
    started = time.monotonic()
    _digest.every = config.scan.progress_interval
    acted: list[ActResult] = []
    metrics = None
    if metrics_out is not None:
        metrics = ScanMetrics(target_of(config).id, config.audit.scenes_per_image)
        if metrics_out.port is not None:
            metrics.serve(metrics_out.port)
    seen: list[Progress] = []

    async def work(stop: anyio.Event, progress: Progress) -> ScanResult:
        seen.append(progress)
        async with anyio.create_task_group() as tg:
            if metrics is not None and metrics_out is not None:
                every = config.scan.progress_interval
                tg.start_soon(_keep_metrics, metrics, progress, metrics_out, every)
            result = await scan_target(
                config,
                stop,
                progress,
                max_images=max_images,
                mode=mode,
                force=force,
                on_retry=_log_retry,
            )
            if result.outcome == "done" and config.act.on_flagged and not stop.is_set():
                acted.append(await _on_flagged(config, result, stop))
            tg.cancel_scope.cancel()
        return result

    result = await _supervised(config, work)
    if metrics is not None and seen:
        await _final_metrics(config, metrics, seen[0], result, metrics_out)
    if result is None:
        fail("cos-scanner: aborted; what was in flight stays pending; run scan again to resume")
        return EXIT_INTERRUPTED
    seconds = time.monotonic() - started
    return await _finish_scan(config, result, seconds, acted[0] if acted else None, summary_path)


async def _finish_scan(
    config: Config,
    result: ScanResult,
    seconds: float,
    acted: ActResult | None,
    summary_path: Path | None,
) -> int:
    """The summary (printed, logged, written as JSON) and the exit code of a scan run. With
    --log-format json, stdout gets one JSON object for the run instead of the text table."""
    record = {
        **status_json(result.status),
        "outcome": result.outcome,
        "run_seconds": round(seconds, 2),
    }
    if acted is not None:
        record["act"] = act_summary(acted)
    code = exit_for(result)
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
    _write_summary(summary_path or Path(config.store.path + ".summary.json"), record)
    if code == EXIT_IMAGES_FAILED:
        fail(
            f"cos-scanner: scan {result.status.id} done, but {result.status.failed:,} images "
            "failed (report --state failed; scan --retry-failed to try them again)"
        )
    elif code == EXIT_PAUSED:
        fail(f"cos-scanner: scan {result.status.id} paused at --max-images; run scan to continue")
    return code


async def _final_metrics(
    config: Config,
    metrics: ScanMetrics,
    progress: Progress,
    result: ScanResult | None,
    out: MetricsOut | None,
) -> None:
    metrics.retries = _digest.total
    metrics.update(progress)
    if result is not None:
        async with await Store.open(config.store.path) as store:
            failures = await store.failure_codes(result.status.id)
        metrics.finish(result.status, result.outcome, failures)
    if out is not None and out.file is not None:
        try:
            metrics.write(str(out.file))
        except OSError as exc:
            log.warning("could not write the metrics to %s: %s", out.file, exc.strerror or exc)


async def _on_flagged(config: Config, result: ScanResult, stop: anyio.Event) -> ActResult:
    """[act] on_flagged: the action on what this scan newly flagged (Result 1, score at least
    [act] min_score), journaled like any act run."""
    where = ReportFilter(results=(1,), min_score=config.act.min_score, scan_id=result.status.id)
    place = None
    if config.act.on_flagged == "quarantine":
        if not config.act.quarantine_to:
            raise ConfigError("act.on_flagged = quarantine needs act.quarantine_to")
        place = quarantine_place(config.act.quarantine_to, target_of(config))
    request = ActRequest(config.act.on_flagged, where, place=place)
    return await apply_act(config, request, stop, ActProgress(), on_retry=_log_retry)


def _write_summary(path: Path, record: dict[str, Any]) -> None:
    """The final summary as JSON for monitoring, replaced atomically."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        log.warning("could not write the summary to %s: %s", path, exc.strerror or exc)


class _RetryDigest:
    """Retries and throttles as one INFO line per interval (a storm is one line, not one per
    request); each retry in detail at DEBUG."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.total = 0  # every retry of the process (for the metrics)
        self.counts: Counter[str] = Counter()
        self.since = time.monotonic()

    def add(self, event: str, wait: float) -> None:
        now = time.monotonic()
        self.total += 1
        if not self.counts:
            self.since = now
        self.counts[event] += 1
        if now - self.since < self.every and sum(self.counts.values()) > 1:
            return
        span = max(now - self.since, 0.001)
        tally = ", ".join(f"{n:,} {k}" for k, n in sorted(self.counts.items()))
        log.info(
            "%s in the last %.0fs; waiting %.1fs before the next try",
            tally,
            span,
            wait,
            extra={"event": "retries", **self.counts, "seconds": round(span, 1)},
        )
        self.counts.clear()


_digest = _RetryDigest()


def _log_retry(exc: RemoteError, attempt: int, wait: float) -> None:
    event = "throttled" if isinstance(exc, ThrottledError) else "retry"
    _digest.add(event, wait)
    level = logging.INFO if logs.json_logs else logging.DEBUG
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


async def _dry(
    config: Config, mode: str, force: bool, max_images: int | None, as_json: bool
) -> int:
    def work(stop: anyio.Event, progress: Progress) -> Awaitable[Estimate]:
        return dry_run(config, progress, stop, mode=mode, force=force, max_images=max_images)

    est = await _supervised(config, work)
    if est is None:
        return EXIT_INTERRUPTED
    data = est.as_json(config)
    print(json.dumps(data) if as_json else dry_run_text(data, config.audit))
    return EXIT_OK


def run_scan(args: argparse.Namespace) -> int:
    if args.max_images is not None and args.max_images < 1:
        raise ConfigError(f"--max-images must be >= 1 (got {args.max_images})")
    if args.json and not args.dry_run:
        raise ConfigError("--json goes with --dry-run (a scan's summary is in --summary)")
    config = _load(args, full=True)
    mode, force = scan_mode(args, config)
    if args.dry_run:
        return anyio.run(_dry, config, mode, force, args.max_images, args.json)
    return anyio.run(
        _scan, config, args.max_images, mode, force, args.summary, metrics_out_of(args)
    )


def metrics_out_of(args: argparse.Namespace) -> MetricsOut | None:
    if args.metrics_port is not None and not 1 <= args.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port must be 1..65535 (got {args.metrics_port})")
    if args.metrics_file is None and args.metrics_port is None:
        return None
    return MetricsOut(args.metrics_file, args.metrics_port)


def run_status(args: argparse.Namespace) -> int:
    config = _load(args, full=False)

    async def read() -> tuple[list[ScanStatus], dict[int, int | None]]:
        async with await Store.open(config.store.path, readonly=True) as store:
            scans = await store.scans(args.limit)
            expected = {
                s.id: await store.previous_listed(s.target, s.id)
                for s in scans
                if s.state != "done" and not s.listing_done
            }
            return scans, expected

    scans, expected = anyio.run(read)
    if args.json:
        print(json.dumps([status_json(s, expected.get(s.id)) for s in scans], indent=2))
    elif not scans:
        print(f"no scans in {config.store.path}")
    else:
        print(status_table(scans, expected))
    return EXIT_OK


_STATES = {"audited", "failed", "skipped", "deleted", "superseded"}
#: Labels the service documents (reference 3.3); a store may hold others, which count as known.
LABELS = ("Normal", *DETECT_TYPES)


def selection(args: argparse.Namespace) -> ReportFilter:
    """The verdict filters `report` and `act` share, checked."""
    wrong = [r for r in args.result if r not in (0, 1, 2)]
    if wrong:
        raise ConfigError(
            f"--result: {wrong} is not a Result; choose from 0 (normal), "
            "1 (sensitive), 2 (suspicious)"
        )
    for name in ("min_score", "max_score"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 100:
            raise ConfigError(f"--{name.replace('_', '-')} must be 0..100 (got {value})")
    return ReportFilter(
        results=args.result,
        labels=args.label,
        min_score=args.min_score,
        max_score=args.max_score,
        prefix=args.key_prefix,
        frozen=args.frozen,
        scan_id=args.scan,
        since=args.since,
    )


def _report_filter(args: argparse.Namespace) -> ReportFilter:
    bad = set(args.state) - _STATES
    if bad:
        raise ConfigError(f"--state: unknown {sorted(bad)}; choose from {sorted(_STATES)}")
    if args.presign is not None and not 1 <= args.presign <= 7 * 86400:
        raise ConfigError(f"--presign must be 1..604800 seconds (got {args.presign})")
    return dataclasses.replace(selection(args), states=args.state, history=args.history)


async def spelled_labels(store: Store, target: str, where: ReportFilter) -> ReportFilter:
    """`where` with its labels in the store's spelling (any case asked)."""
    if not where.labels:
        return where
    labels = _labels(where.labels, await store.labels_known(target))
    return dataclasses.replace(where, labels=labels)


def _labels(asked: tuple[str, ...], known: set[str]) -> tuple[str, ...]:
    """`--label` values in the spelling the store holds (any case); an unknown one is an error."""
    spelled = {label.lower(): label for label in (*LABELS, *sorted(known))}
    unknown = [a for a in asked if a.lower() not in spelled]
    if unknown:
        raise ConfigError(f"--label: unknown {unknown}; choose from {', '.join(spelled.values())}")
    return tuple(spelled[a.lower()] for a in asked)


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
        where = await spelled_labels(store, target, where)
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


def run_report(args: argparse.Namespace) -> int:
    config = _load(args, full=False)
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


def run_config(args: argparse.Namespace) -> int:
    """`config show`: the effective configuration and where each value came from."""
    overrides = {"store.path": args.store} if args.store is not None else {}
    path = _config_path(args)
    config = load_config(path, os.environ, overrides, require_credentials=False,
                         require_target=False)  # fmt: skip
    rows = describe_config(config, path, os.environ, overrides)
    if args.json:
        print(json.dumps({k: {"value": v, "source": src} for k, v, src in rows}, default=list))
        return EXIT_OK
    print(f"# config file: {path or 'none'}")
    for key, value, source in rows:
        shown = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
        print(f"{key} = {shown}  # {source}")
    return EXIT_OK


def run_migrate(args: argparse.Namespace) -> int:
    config = _load(args, full=False)

    async def migrate() -> int:
        async with await Store.open(config.store.path) as store:
            return await store.version()

    print(f"store {config.store.path}: schema version {anyio.run(migrate)}")
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    from scanner.demo import demo_config, expected_counts, start_demo_emulator

    with tempfile.TemporaryDirectory(prefix="cos-scanner-demo-") as tmp:

        async def run() -> int:
            async with start_demo_emulator(args.objects, args.seed, args.latency) as (state, url):
                config = demo_config(url, Path(tmp) / "demo.db")
                print(
                    f"emulator: {len(state.bucket):,} objects in {state.bucket_name} at {url} "
                    f"(latency {args.latency:g}s); store {config.store.path}"
                )
                code = await _scan(config, None, metrics_out=metrics_out_of(args))
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
                if got != expected:
                    return EXIT_FAILED
                return EXIT_OK if code in (EXIT_OK, EXIT_IMAGES_FAILED) else code

        return anyio.run(run)
