"""What every command shares: the exit codes, the one-line error, loading the config, the
signal watcher and progress display around a run, the retry log, the verdict filters; and
the small commands `config show` and `migrate`. The command families live beside it: `scan`
(scan, demo), `report` (status, report), `act`, `emulator`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio

from scanner.cli import logs
from scanner.cli.progress import Render, scan_render, show_progress
from scanner.config import DETECT_TYPES, Config, describe_config, load_config
from scanner.cos.credentials import describe as describe_credentials
from scanner.errors import (
    AuthError,
    ConfigError,
    RemoteError,
    ScanBusyError,
    ThrottledError,
)
from scanner.scan.progress import Progress
from scanner.store import DECISIONS, ReportFilter, Store

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
    (EXIT_PAUSED, "paused at --max-images, the daily cap or the window's end; run scan again"),
    (EXIT_IO, "cannot write the output (a full disk, /dev/full)"),
    (EXIT_BUSY, "another live scan holds the target's lease; try again later"),
    (EXIT_AUTH, "credentials refused or permission denied"),
    (EXIT_INTERRUPTED, "interrupted by a signal after draining; run scan again to resume"),
)

log = logging.getLogger("scanner")


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get("COS_SCANNER_CONFIG")
    if env:
        return Path(env)
    return Path("config.toml") if Path("config.toml").is_file() else None


def load_config_of(args: argparse.Namespace, *, full: bool, prefix: bool = True) -> Config:
    """The config of a command; `--prefix` applied unless the command applies it itself
    (`scan`: its plan does)."""
    overrides: dict[str, Any] = {}
    stores = args.store if isinstance(args.store, list) else [args.store]
    if stores[0] is not None:  # report --store A --store B: the first opens the config's way
        overrides["store.path"] = stores[0]
    if prefix and getattr(args, "prefix", None) is not None:
        overrides["cos.prefix"] = args.prefix
    return load_config(
        _config_path(args), os.environ, overrides, require_credentials=full, require_target=full
    )


def code_of(exc: BaseException) -> int:
    """The exit code of an error that ends a command (the README's table)."""
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, ScanBusyError):
        return EXIT_BUSY
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, AuthError):
        return EXIT_AUTH
    return EXIT_FAILED


_DRAINING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_deferred() -> Iterator[list[signal.Signals]]:
    """SIGINT, SIGTERM and SIGHUP noted, not acted on, for the body (the final metrics and
    summary.json: a scan's last writes), then the handlers as they were. Only the main thread
    can set handlers: elsewhere (a test calling main in a thread) the body runs as it is."""
    got: list[signal.Signals] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def note(signum: int, _frame: object) -> None:
        got.append(signal.Signals(signum))
        log.warning("%s: writing the summary first", signal.Signals(signum).name)

    before = {s: signal.signal(s, note) for s in _DRAINING}
    try:
        yield got
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


async def watch_signals(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM/SIGHUP (a closed terminal): stop listing and drain. Second:
    abort at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if stop.is_set():
                log.warning("%s again: aborting; what was in flight stays pending", signum.name)
                scope.cancel()
                return
            log.warning("%s: draining in-flight batches; repeat to abort", signum.name)
            stop.set()


async def supervised(
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


retry_digest = _RetryDigest()


def log_retry(exc: RemoteError, attempt: int, wait: float) -> None:
    event = "throttled" if isinstance(exc, ThrottledError) else "retry"
    retry_digest.add(event, wait)
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


LABELS = ("Normal", *DETECT_TYPES)


def selection(args: argparse.Namespace) -> ReportFilter:
    """The verdict filters `report` and `act` share, checked."""
    wrong = [r for r in args.result if r not in (0, 1, 2)]
    if wrong:
        raise ConfigError(
            f"--result: {wrong} is not a Result; choose from 0 (normal), "
            "1 (sensitive), 2 (suspicious)"
        )
    bad = set(getattr(args, "decision", ())) - {*DECISIONS, "undecided"}
    if bad:
        raise ConfigError(
            f"--decision: unknown {sorted(bad)}; choose from {', '.join(DECISIONS)}, undecided"
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
        users=args.user,
        scan_id=args.scan,
        since=args.since,
        decisions=tuple(getattr(args, "decision", ())),
    )


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


def run_config(args: argparse.Namespace) -> int:
    """`config show`: the effective configuration and where each value came from."""
    overrides = {"store.path": args.store} if args.store is not None else {}
    path = _config_path(args)
    config = load_config(path, os.environ, overrides, require_credentials=False,
                         require_target=False)  # fmt: skip
    rows = describe_config(config, path, os.environ, overrides)
    source, expires = anyio.run(describe_credentials, config.credentials, config.identity)
    rows += [("credentials.source", source, "resolved now"),
             ("credentials.expires", expires, "resolved now")]  # fmt: skip
    if args.json:
        print(json.dumps({k: {"value": v, "source": src} for k, v, src in rows}, default=list))
        return EXIT_OK
    print(f"# config file: {path or 'none'}")
    for key, value, source in rows:
        shown = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
        print(f"{key} = {shown}  # {source}")
    return EXIT_OK


def run_migrate(args: argparse.Namespace) -> int:
    config = load_config_of(args, full=False)

    async def migrate() -> int:
        async with await Store.open(config.store.path, adopt=True) as store:
            return await store.version()

    print(f"store {config.store.path}: schema version {anyio.run(migrate)}")
    return EXIT_OK
