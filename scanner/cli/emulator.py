"""`emulator`: serve the COS + CI emulator until a signal."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import time

import anyio

from scanner.cli.commands import (
    EXIT_OK,
)
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
)


def _emulator_state(args: argparse.Namespace) -> EmulatorState:
    if args.root is not None:
        if not args.root.is_dir():
            raise ConfigError(f"--root {str(args.root)!r} is not a directory")
        bucket = from_folder(args.root)
    else:
        if args.objects < 0:
            raise ConfigError(f"--objects must be >= 0 (got {args.objects})")
        if not 0.0 <= args.copies < 1.0:
            raise ConfigError(f"--copies must be a share in [0, 1) (got {args.copies})")
        bucket = synthetic(args.objects, args.seed, args.copies)
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
