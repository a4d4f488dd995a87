"""`emulator`: serve the COS + CI emulator until a signal."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import time
from pathlib import Path

import anyio

from scanner.cli.commands import (
    EXIT_OK,
)
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_REGION,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    Bucket,
    EmulatorState,
    Faults,
    Identity,
    KeyPair,
    from_folder,
    serve,
    synthetic,
)
from scanner.errors import (
    ConfigError,
)


def arguments(p: argparse.ArgumentParser) -> None:
    """The emulator command's own arguments."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 = any free)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--objects", type=int, default=10000, help="synthetic album size")
    src.add_argument("--root", type=Path, help="serve this folder as the bucket instead")
    p.add_argument("--seed", type=int, default=1, help="seed of the album and of the faults")
    p.add_argument(
        "--copies",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the album's images that are copies of another (0..1, e.g. 0.2): "
        "the same bytes, ETag and size under another key",
    )
    p.add_argument(
        "--media",
        type=float,
        default=0.0,
        help="share of the album's images that are videos, voice notes and documents instead "
        "(0..1, e.g. 0.08; 5:2:1)",
    )
    p.add_argument(
        "--job-seconds",
        type=float,
        default=0.5,
        help="how long a video, audio or document moderation job runs (default 0.5)",
    )
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
        "--extra-bucket",
        action="append",
        default=[],
        metavar="NAME",
        help="also serve this (empty) bucket, e.g. for quarantine copies; repeatable",
    )
    p.add_argument(
        "--private-bucket",
        action="store_true",
        help="objects at ACL 'default' are private (default: the bucket is public-read)",
    )
    p.add_argument(
        "--token-expires-in",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the session token expires this long after start (negative: expired)",
    )
    p.add_argument(
        "--token-lifetime",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="lifetime of the temporary keys the metadata service and STS hand out (default "
        "1800; at most DurationSeconds)",
    )
    p.add_argument(
        "--role", default="cos-scanner", help="the CVM role served at .../security-credentials/"
    )
    p.add_argument(
        "--web-identity-token",
        default="emulator-oidc-token",
        help="the TKE OIDC token AssumeRoleWithWebIdentity accepts",
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
        if not 0.0 <= args.media < 1.0:
            raise ConfigError(f"--media must be a share in [0, 1) (got {args.media})")
        bucket = synthetic(args.objects, args.seed, args.copies, args.media)
    if not args.token_lifetime > 0:
        raise ConfigError(f"--token-lifetime must be > 0 seconds (got {args.token_lifetime:g})")
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
        identity=Identity(
            lifetime=args.token_lifetime, role=args.role, web_identity_token=args.web_identity_token
        ),
        bucket_acl="private" if args.private_bucket else "public-read",
        job_seconds=max(0.0, args.job_seconds),
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
