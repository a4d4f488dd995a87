"""`cos-scanner review`: serve the review page for the store's target until Ctrl-C."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import secrets
import signal
import webbrowser
from collections.abc import Callable
from pathlib import Path

import anyio

from scanner.cli.commands import EXIT_OK, fail, load_config_of
from scanner.config import Config, Credentials
from scanner.cos.client import HttpClient
from scanner.errors import ConfigError
from scanner.models import Target
from scanner.review.app import ReviewSettings, serving
from scanner.review.thumbs import Thumbs
from scanner.store import Store


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_review(args: argparse.Namespace) -> int:
    config = load_config_of(args, full=False)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535 (got {args.port})")
    if not Path(config.store.path).is_file():
        raise ConfigError(f"no store at {config.store.path!r}: run a scan first")
    if not _loopback(args.host):
        fail(f"cos-scanner: warning: serving on {args.host}: anyone who can reach it and has "
             "the token can decide; prefer an SSH tunnel (see README)")  # fmt: skip
    anyio.run(serve_review, config, args.host, args.port, args.reviewer or default_reviewer(),
              not args.no_browser)  # fmt: skip
    return EXIT_OK


async def serve_review(
    config: Config,
    host: str,
    port: int,
    reviewer: str,
    open_browser: bool,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation)."""
    async with await Store.open(config.store.path) as store:
        target = Target.of(config.cos).id if config.cos.bucket else await _only_target(store)
        creds = config.credentials or Credentials("", "")
        async with HttpClient(creds) as http:
            token = secrets.token_urlsafe(24)
            settings = ReviewSettings(target, reviewer, token, host)
            async with serving(store, settings, Thumbs(http, config.cos), port) as bound:
                shown = f"[{host}]" if ":" in host else host
                url = f"http://{shown}:{bound}/?token={token}"
                print(f"cos-scanner review of {target} as {reviewer}: open {url}", flush=True)
                print("  Ctrl-C stops it; decisions are saved as they are made", flush=True)
                if ready is not None:
                    ready(url)
                if open_browser:
                    webbrowser.open(url)
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        return


async def _only_target(store: Store) -> str:
    targets = await store.targets()
    if len(targets) != 1:
        raise ConfigError(f"the store holds {len(targets)} targets: set [cos] bucket/region/prefix")
    return targets[0]
