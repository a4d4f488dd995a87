"""`cos-scanner review` as a command (issue 25, item 8): a port in use is one line (exit 2);
`--host 0.0.0.0` prints the URLs that work and accepts the machine's addresses; `--public-url`
serves behind a reverse proxy; the browser gets the token through a short-lived file only this
user can read, never on its command line."""

from __future__ import annotations

import http.client
import ipaddress
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest

from scanner.emulator import EmulatorState, running, synthetic
from scanner.scan.progress import Progress
from tests.helpers import config, run_scan


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("review")

    async def scanned() -> str:
        state = EmulatorState(bucket=synthetic(200, 73), seed=73)
        async with running(state) as url:
            cfg = config(url, tmp)
            assert (await run_scan(cfg, anyio.Event(), Progress())).outcome == "done"
            return cfg.store.path

    return anyio.run(scanned)


@contextmanager
def review(store: str, *extra: str, env: dict[str, str] | None = None) -> Iterator[list[str]]:
    """The command running; yields the lines it printed up to 'Ctrl-C stops it'."""
    argv = [sys.executable, "-m", "scanner", "review", "--store", store, "--reviewer", "dan",
            *extra]  # fmt: skip
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert p.stdout is not None

    def read() -> None:
        for line in p.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        printed: list[str] = []
        while not printed or "Ctrl-C stops it" not in printed[-1]:
            printed.append(lines.get(timeout=30))
        yield printed
    finally:
        p.send_signal(signal.SIGINT)
        try:
            assert p.wait(timeout=10) == 0
        finally:
            p.kill()
            p.wait()
            reader.join(timeout=5)
            p.stdout.close()


def opens(url: str, host: str | None = None) -> int:
    """The status of following the token URL (the cookie set, then the page)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with opener.open(request, timeout=5) as page:
            return int(page.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_every_address_and_a_port_in_use(store: str) -> None:
    with review(store, "--host", "0.0.0.0", "--port", "0", "--no-browser") as lines:
        urls = [line.rsplit(" ", 1)[1].strip() for line in lines if "http://" in line]
        assert urls[0].startswith("http://127.0.0.1:")
        port = urlsplit(urls[0]).port
        literal = []
        for url in urls:
            host = urlsplit(url).hostname or ""
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue  # the machine's name: resolvable or not, depending on the machine
            literal.append(url)
            assert opens(url) == 200, url  # each address printed opens the page
        assert len(literal) >= 1
        assert opens(urls[0], host=f"evil.example:{port}") == 403  # still no DNS rebinding
        busy = subprocess.run(
            [sys.executable, "-m", "scanner", "review", "--store", store, "--port", str(port),
             "--no-browser"], capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
    err = busy.stderr.strip().splitlines()
    assert busy.returncode == 2, busy.stderr
    assert len(err) == 1, err
    assert f"--port {port}: 127.0.0.1:{port} is in use" in err[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_behind_a_reverse_proxy(store: str) -> None:
    """The proxy passes Host review.example.com and the browser's https Origin; the page
    accepts both, prints the public URL and marks the cookie Secure."""
    port = free_port()
    public = "review.example.com"
    with review(store, "--port", str(port), "--no-browser",
                "--public-url", f"https://{public}/") as lines:  # fmt: skip
        (url,) = [line.rsplit(" ", 1)[1].strip() for line in lines if "://" in line]
        assert url.startswith(f"https://{public}/?token=")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

        def ask(method: str, path: str, **headers: str) -> http.client.HTTPResponse:
            body = b'{"items": [], "decision": "skip"}' if method == "POST" else None
            conn.request(method, path, body=body, headers={"Host": public, **headers})
            answer = conn.getresponse()
            answer.read()
            return answer

        got = ask("GET", "/?" + urlsplit(url).query)
        assert got.status == 302
        cookie = got.getheader("Set-Cookie") or ""
        assert f"cos_scanner_review_{port}=" in cookie
        assert "Secure" in cookie
        session = cookie.split(";")[0]
        assert ask("GET", "/api/meta", Cookie=session).status == 200
        origin = f"https://{public}"
        assert ask("POST", "/api/decide", Cookie=session, Origin=origin).status == 200
        assert (
            ask("POST", "/api/decide", Cookie=session, Origin="https://evil.example").status == 403
        )
        assert ask("GET", "/api/meta", Cookie=session, Host="evil.example").status == 403
        conn.close()
    bad = subprocess.run(
        [sys.executable, "-m", "scanner", "review", "--store", store, "--no-browser",
         "--public-url", "https://review.example.com/sub/path"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--public-url" in bad.stderr


def test_the_browser_gets_a_file_not_the_token(store: str, tmp_path: Path) -> None:
    seen = tmp_path / "browser-argv"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}\n')
    browser.chmod(0o755)
    env = dict(os.environ, BROWSER=str(browser))
    with review(store, "--port", "0", env=env) as lines:
        url = next(line.rsplit(" ", 1)[1].strip() for line in lines if "http://" in line)
        token = url.split("token=")[1]
        deadline = time.monotonic() + 10
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        argv = seen.read_text().split()
        assert argv, "the browser was not started"
        assert token not in " ".join(argv)  # not on the command line (ps shows it to all)
        opened = Path(urlsplit(argv[0]).path)
        assert argv[0].startswith("file://")
        assert stat.S_IMODE(opened.stat().st_mode) == 0o600
        assert stat.S_IMODE(opened.parent.stat().st_mode) == 0o700
        assert url.replace("&", "&amp;") in opened.read_text()
    assert not opened.exists()  # gone with the server (or after a minute)
