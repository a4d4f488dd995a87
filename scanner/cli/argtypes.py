"""Flags that several commands share, and their value types: --config/--store and the log
options of every command, the verdict filters of `report` and `act`, the metrics outputs of
`scan` and `demo`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def csv_words(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def scan_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a scan id, got {text!r}") from None
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"no scan has id {text} (ids are 1 .. 2^63-1)")
    return value


def since(text: str) -> float:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or date-time, got {text!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def filter_args(p: argparse.ArgumentParser) -> None:
    """The verdict filters `report` and `act` share."""
    p.add_argument(
        "--result", type=csv_ints, default=(), help="only these Results (0, 1, 2), e.g. 1,2"
    )
    p.add_argument(
        "--label", type=csv_words, default=(), help="only these Labels (any case), e.g. porn,ads"
    )
    p.add_argument("--min-score", type=int, default=None, help="only scores >= this (0..100)")
    p.add_argument("--max-score", type=int, default=None, help="only scores <= this (0..100)")
    p.add_argument(
        "--prefix", dest="key_prefix", default="", metavar="PREFIX", help="only keys under it"
    )
    p.add_argument(
        "--user", type=csv_words, default=(), help="only these uploaders ([scan] user_from_key)"
    )
    frozen = p.add_mutually_exclusive_group()
    frozen.add_argument(
        "--frozen", dest="frozen", action="store_const", const=True, default=None,
        help="only objects the service froze at audit time",
    )  # fmt: skip
    frozen.add_argument(
        "--not-frozen", dest="frozen", action="store_const", const=False,
        help="only objects not frozen at audit time",
    )  # fmt: skip
    p.add_argument("--scan", type=scan_id, default=None, help="only rows recorded by this scan id")
    p.add_argument(
        "--decision",
        type=csv_words,
        default=(),
        help="only verdicts a reviewer decided so: approve, block, skip, undecided (comma list)",
    )
    p.add_argument(
        "--since",
        type=since,
        default=None,
        help="only rows audited (or failed) at or after this ISO date/time",
    )


def metrics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="write Prometheus metrics here every progress interval and at exit (atomically; "
        "for node_exporter's textfile collector)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve the same metrics over HTTP on 127.0.0.1:PORT while the scan runs",
    )
    p.add_argument(
        "--metrics-push",
        default=None,
        metavar="URL",
        help="push the final metrics to this Prometheus Pushgateway at the end of the run "
        "(job cos-scanner, grouped by target): the way for batch jobs such as a Kubernetes Job",
    )


def global_args(p: argparse.ArgumentParser, *, sub: bool) -> None:
    """Options accepted before or after the subcommand. On a subcommand their default is
    SUPPRESS, so one given before the subcommand is not reset by the subcommand's parser."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    p.add_argument(
        "--config",
        type=Path,
        default=default(None),
        help="TOML config file (default: $COS_SCANNER_CONFIG, else ./config.toml if present)",
    )
    p.add_argument(
        "--store", default=default(None), help="SQLite store path (overrides [store] path)"
    )
    log_args(p, sub=sub)


def log_args(p: argparse.ArgumentParser, *, sub: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    p.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log details"
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("text"),
        help="text lines, or one JSON event per line (for log pipelines)",
    )


def config_args(p: argparse.ArgumentParser) -> None:
    global_args(p, sub=True)
