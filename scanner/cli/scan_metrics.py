"""A scan's metrics outputs (`--metrics-file`, `--metrics-port`, `--metrics-push`): kept fresh
while the run goes on, and written with how it ended, failed runs included."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import anyio

from scanner.cli.commands import log, retry_digest
from scanner.config import Config
from scanner.errors import ConfigError, ScannerError, echo
from scanner.metrics import ScanMetrics
from scanner.scan.progress import Progress
from scanner.store import Store


@dataclass(frozen=True, slots=True)
class MetricsOut:
    """Where a scan's metrics go: a Prometheus text file, an HTTP port, or both."""

    file: Path | None = None
    port: int | None = None
    push: str | None = None  # a Pushgateway's URL: the final metrics go there


async def keep_metrics(
    metrics: ScanMetrics, progress: Progress, out: MetricsOut, every: float, config: Config,
    target: str,
) -> None:  # fmt: skip
    while True:
        metrics.retries = retry_digest.total
        metrics.update(progress)
        try:  # the counters over the store's life, the last success, the review queue
            async with await Store.open(config.store.path, readonly=True) as store:
                metrics.refresh(await store.monitoring(target))
        except ScannerError as exc:
            log.warning("metrics: could not read the store: %s", exc)
        if out.file is not None:
            write_metrics(metrics, out.file)
        await anyio.sleep(every)


def write_metrics(metrics: ScanMetrics, path: Path) -> None:
    """The metrics file; a failing write (a full disk, a missing folder) is a warning, each
    interval, and never ends the scan."""
    try:
        metrics.write(str(path))
    except OSError as exc:
        log.warning("could not write the metrics to %s: %s", path, exc.strerror or exc)


async def run_ended(
    config: Config,
    target: str,
    since: float,
    code: int,
    metrics: ScanMetrics | None,
    seen: list[Progress],
    out: MetricsOut | None,
) -> None:
    """How the run ended: recorded on the scan it ran (every later metrics file says it) and,
    with metrics, written in the final file with the store's figures, failed runs included
    (a failed nightly left the last success's file, so no alert fired)."""
    totals = None
    try:
        async with await Store.open(config.store.path) as store:
            await store.record_run_end(target, since, code)
            totals = await store.monitoring(target) if metrics is not None else None
    except ScannerError as exc:  # the store is why the run failed: its error line says so
        log.debug("could not record how the run ended: %s", exc)
    if metrics is None:
        return
    metrics.retries = retry_digest.total
    if seen:
        metrics.update(seen[0])
    if totals is not None:
        metrics.refresh(totals)
    metrics.finish(code)
    if out is not None and out.file is not None:
        write_metrics(metrics, out.file)
    if out is not None and out.push is not None:
        await _push_metrics(metrics, out.push, target)


async def _push_metrics(metrics: ScanMetrics, url: str, target: str) -> None:
    """The final metrics to a Pushgateway; one that is down is a warning, never the run's
    end (retried twice)."""
    for attempt in range(3):
        try:
            with anyio.fail_after(15):
                await anyio.to_thread.run_sync(metrics.push, url, target)
            return
        except (OSError, TimeoutError) as exc:
            if attempt == 2:
                log.warning("could not push the metrics to %s: %s", url, exc)
            else:
                await anyio.sleep(1.0 + attempt)


def metrics_out_of(args: argparse.Namespace) -> MetricsOut | None:
    if args.metrics_port is not None and not 1 <= args.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port must be 1..65535 (got {args.metrics_port})")
    push = getattr(args, "metrics_push", None)
    if push is not None and not push.startswith(("http://", "https://")):
        raise ConfigError(f"--metrics-push must be an http(s) URL (got {echo(push)})")
    if args.metrics_file is None and args.metrics_port is None and push is None:
        return None
    return MetricsOut(args.metrics_file, args.metrics_port, push)
