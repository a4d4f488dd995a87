"""The command line: subcommands, exit codes, logging setup and signals live here only.

Exit codes: 0 done; 1 failed but resumable; 2 usage or config error; 130 interrupted.
Errors are one line on stderr; `--verbose` adds the detail. Secrets never reach output.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from scanner import __version__
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
from scanner.errors import ConfigError, ScannerError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
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
        keys={args.secret_id: KeyPair(key, token=args.session_token)},
        faults=faults,
    )


def _run_emulator(args: argparse.Namespace) -> int:
    state = _emulator_state(args)

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


def _demo_args(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="scan a synthetic album on an in-process emulator",
        description="Start the emulator in-process and run the scanner against it.",
    )
    p.add_argument("--objects", type=int, default=3000, help="album size (default 3000)")
    p.add_argument("--seed", type=int, default=1, help="album seed")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from scanner.demo import run_demo

    return anyio.run(run_demo, args.objects, args.seed, print)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cos-scanner",
        description="Bulk content moderation of a COS bucket "
        "with Tencent Cloud Infinite batch image auditing.",
    )
    parser.add_argument("--version", action="version", version=f"cos-scanner {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_emulator_args, _demo_args):
        add(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING if verbose else logging.CRITICAL)


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
    _setup_logging(args.verbose)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ConfigError as exc:
        _fail(f"cos-scanner: config error: {exc}")
        return EXIT_USAGE
    except ScannerError as exc:
        _fail(f"cos-scanner: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _fail("cos-scanner: interrupted")
        return EXIT_INTERRUPTED
