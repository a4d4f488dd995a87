"""`cos-scanner review`: serve the review page for the store's target until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import getpass
import html
import ipaddress
import logging
import os
import secrets
import signal
import socket
import tempfile
import webbrowser
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import anyio

from scanner.cli.commands import EXIT_OK, fail, load_config_of
from scanner.config import Config, Credentials
from scanner.cos.client import HttpClient
from scanner.cos.credentials import provider_of
from scanner.errors import ConfigError, echo
from scanner.models import Target
from scanner.review.acting import act_on_decisions, decision_acts
from scanner.review.app import serving
from scanner.review.feedback import send_feedback
from scanner.review.frames import Frames
from scanner.review.guard import WILDCARDS, ReviewSettings
from scanner.review.thumbs import Thumbs
from scanner.store import Store
from scanner.watch import Nudge

#: How long the browser's redirect file lives (it holds the token; Jupyter's pattern).
log = logging.getLogger(__name__)
OPEN_FILE_SECONDS = 60.0


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


def public_url(text: str | None) -> str:
    """`--public-url`: the origin a reverse proxy serves the page under (http(s)://host[:port])."""
    if not text:
        return ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is not one
    except ValueError:
        parts = urlsplit("")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username
        or parts.password
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            f"--public-url {echo(text)}: expected http(s)://host[:port]/ (the proxy serves the "
            "page at the root of its own host name)"
        )  # fmt: skip
    return f"{parts.scheme}://{parts.netloc.lower()}"


def run_review(args: argparse.Namespace) -> int:
    config = load_config_of(args, full=False)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535 (got {args.port})")
    if not Path(config.store.path).is_file():
        raise ConfigError(f"no store at {config.store.path!r}: run a scan first")
    public = public_url(args.public_url or config.review.public_url)
    if not _loopback(args.host) and not public:
        where = args.host or "every address"
        fail(f"cos-scanner: warning: serving on {where}: anyone who can reach it and has the "
             "token can decide; prefer an SSH tunnel (see README)")  # fmt: skip
    anyio.run(serve_review, config, args.host, args.port, args.reviewer or default_reviewer(),
              not args.no_browser, None, public)  # fmt: skip
    return EXIT_OK


def machine_addresses(family: int = socket.AF_INET) -> list[str]:
    """This machine's addresses (of `family`) other people may reach it at: its name's, and
    the one its default route leaves from (no packet is sent)."""
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
        found += [str(info[4][0]) for info in infos]
    except OSError:
        pass
    probe = "192.0.2.1" if family == socket.AF_INET else "2001:db8::1"  # documentation nets
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))
            found.append(str(s.getsockname()[0]))
    except OSError:
        pass
    return sorted({a for a in found if not ipaddress.ip_address(a).is_loopback})


def review_urls(host: str, port: int, token: str, public: str) -> list[str]:
    """The URLs that open the page: the proxy's, else the address served, else (a wildcard
    such as 0.0.0.0) loopback, the machine's name and each of its addresses."""
    if public:
        return [f"{public}/?token={token}"]
    if host not in WILDCARDS:
        hosts = [f"[{host}]" if ":" in host else host]
    else:
        v6 = host == "::"
        hosts = ["127.0.0.1", socket.gethostname().lower()]
        hosts += machine_addresses(socket.AF_INET)
        hosts += [f"[{a}]" for a in machine_addresses(socket.AF_INET6)] if v6 else []
    return [f"http://{h}:{port}/?token={token}" for h in dict.fromkeys(hosts)]


def _bind_error(exc: OSError, host: str, port: int) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"--port {port}: {host}:{port} is in use (another review page?): "
                           "pick another --port, or --port 0 for any free one")  # fmt: skip
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"--host {echo(host)} is not an address of this machine")
    if exc.errno == errno.EACCES:
        return ConfigError(f"--port {port}: not allowed to serve on it (ports below 1024 need "
                           "privileges): pick one above 1023")  # fmt: skip
    return ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


def open_in_browser(url: str, folder: Path) -> Path:
    """Open `url` through a redirect file only this user can read, so the token is not on the
    browser's command line (where every user of the machine can see it): Jupyter's way."""
    path = folder / "open.html"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    link = html.escape(url, quote=True)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f'<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="refresh" '
                 f'content="0;url={link}"><title>cos-scanner review</title>'
                 f'<p>Opening <a href="{link}">the review page</a>...</p>\n')  # fmt: skip
    webbrowser.open(path.as_uri())
    return path


async def _remove_later(path: Path, seconds: float) -> None:
    await anyio.sleep(seconds)
    await anyio.Path(path).unlink(missing_ok=True)


async def serve_review(
    config: Config,
    host: str,
    port: int,
    reviewer: str,
    open_browser: bool,
    ready: Callable[[str], None] | None = None,
    public: str = "",
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation)."""
    async with await Store.open(config.store.path) as store:
        target = Target.of(config.cos).id if config.cos.bucket else await _only_target(store)
        async with AsyncExitStack() as stack:
            http, missing = await _client(stack, config)
            token = secrets.token_urlsafe(24)
            feedback = _feedback_wanted(config, missing)
            acts = decision_acts(config) if not missing else []
            decided = Nudge()
            settings = ReviewSettings(target, reviewer, token, host, public, feedback,
                                      config.review.claim_minutes * 60)  # fmt: skip
            thumbs = Thumbs(http, config.cos)
            frames = Frames.of(config, http, thumbs)
            page = serving(store, settings, thumbs, port, decided, frames)
            try:
                bound = await stack.enter_async_context(page)
            except OSError as exc:  # only the bind: the page's own errors are its own
                raise _bind_error(exc, host or "0.0.0.0", port) from exc
            if missing:  # after the bind: a port in use stays the one line it is
                log.warning("review: %s; thumbnails will not load", missing)
            urls = review_urls(host, bound, token, public)
            tasks = await stack.enter_async_context(anyio.create_task_group())
            if feedback:  # sent while the page runs; what is left waits in the store
                tasks.start_soon(send_feedback, store, http, config.cos, config.audit)
            if acts:  # [review] on_block / on_approve: decisions applied through `act`
                tasks.start_soon(act_on_decisions, config, acts, decided)
            await _announce(target, reviewer, urls, open_browser, ready)
            tasks.cancel_scope.cancel()


def _feedback_wanted(config: Config, missing: str) -> bool:
    """Whether decisions are told to the service: `[review] report_badcase`, for CI verdicts
    of a configured bucket with credentials (IMS has no feedback API)."""
    if not config.review.report_badcase:
        return False
    why = ""
    if config.audit.service == "ims":
        why = "IMS has no API for feedback on its verdicts (CI has: POST /report/badcase)"
    elif not config.cos.bucket:
        why = "no [cos] bucket: the feedback goes to its CI host"
    elif missing:
        why = "no credentials"
    if why:
        log.warning("review: [review] report_badcase is set, but nothing is sent: %s", why)
    return not why


async def _announce(
    target: str,
    reviewer: str,
    urls: list[str],
    open_browser: bool,
    ready: Callable[[str], None] | None,
) -> None:
    """Say where the page is, open a browser on it, and serve until SIGINT or SIGTERM (the
    signals are taken before anything is said: a Ctrl-C at once still ends it cleanly)."""
    with (
        anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        tempfile.TemporaryDirectory(prefix="cos-scanner-review-") as folder,
    ):
        print(f"cos-scanner review of {target} as {reviewer}: open {urls[0]}", flush=True)
        for other in urls[1:]:
            print(f"  or {other}", flush=True)
        print("  Ctrl-C stops it; decisions are saved as they are made", flush=True)
        if ready is not None:
            ready(urls[0])
        async with anyio.create_task_group() as tg:
            if open_browser:  # in a thread: a browser command may take its time to return
                tg.start_soon(_open_browser, urls[0], Path(folder))
            async for _ in signals:
                break
            tg.cancel_scope.cancel()


async def _open_browser(url: str, folder: Path) -> None:
    opened = await anyio.to_thread.run_sync(open_in_browser, url, folder, abandon_on_cancel=True)
    await _remove_later(opened, OPEN_FILE_SECONDS)


async def _client(stack: AsyncExitStack, config: Config) -> tuple[HttpClient, str]:
    """A client for thumbnails with the configured credentials or, when none are found
    anywhere, none (and why): the page still serves, its thumbnails are refused."""
    try:
        return await stack.enter_async_context(HttpClient(provider_of(config))), ""
    except ConfigError as exc:
        missing = " ".join(str(exc).split())
    return await stack.enter_async_context(HttpClient(Credentials("", ""))), missing


async def _only_target(store: Store) -> str:
    targets = await store.targets()
    if len(targets) != 1:
        raise ConfigError(f"the store holds {len(targets)} targets: set [cos] bucket/region/prefix")
    return targets[0]
