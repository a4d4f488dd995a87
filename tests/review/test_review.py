"""The review page: its HTTP guard (token, cookie, Host, Origin, CSP), its API (keyset pages,
counts, decisions), and the real page in headless Chromium (Debian's, via Playwright's
executable_path; no browser is downloaded). Browser tests skip in one line where Chromium or
Playwright is missing, unless REVIEW_BROWSER_REQUIRED=1 (CI), where they must run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import pytest

from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.models import Target
from scanner.review.app import serving
from scanner.review.guard import CSP, ReviewSettings
from scanner.review.thumbs import Thumbs
from scanner.scan.progress import Progress
from scanner.store import Cursor, QueueFilter, Store
from tests.helpers import CREDS, config, run_scan
from tests.tools import required_tool

TOKEN = "test-token-0123456789"
HOSTILE = ["nsfw/<img src=x onerror=alert(1)>.jpg", 'nsfw/"><script>alert(2)</script>.png']


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    store: Store
    cfg: Config
    state: EmulatorState
    target: str


@contextlib.asynccontextmanager
async def serve(
    tmp_path: Path, objects: int = 1500, seed: int = 71, copies: float = 0.1
) -> AsyncIterator[Served]:
    state = EmulatorState(bucket=synthetic(objects, seed, copies=copies), seed=seed)
    for key in HOSTILE:
        state.bucket.put(key, StoredObject(etag_of(key), 50_000, datetime.now(UTC)))
    async with running(state) as url:
        cfg = config(url, tmp_path)
        assert (await run_scan(cfg, anyio.Event(), Progress())).outcome == "done"
        target = Target.of(cfg.cos).id
        async with await Store.open(cfg.store.path) as store, HttpClient(CREDS) as http:
            settings = ReviewSettings(target, "tester", TOKEN)
            async with serving(store, settings, Thumbs(http, cfg.cos), 0) as port:
                yield Served(f"http://127.0.0.1:{port}", store, cfg, state, target)


async def test_the_guard(tmp_path: Path) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP host
    async with serve(tmp_path, 300) as s, aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(s.url + "/") as r:
            assert r.status == 403  # no token
            assert r.headers["Content-Security-Policy"] == CSP
        async with http.get(s.url + "/?token=wrong") as r:
            assert r.status == 403
        async with http.get(s.url + f"/?token={TOKEN}", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/"
            port = urlsplit(s.url).port
            cookie = r.cookies[f"cos_scanner_review_{port}"]  # named per port
            assert cookie["httponly"]
            assert cookie["samesite"] == "Strict"
            assert cookie.value != TOKEN  # a session id derived from it, not the token
            assert TOKEN not in cookie.value
        async with http.get(s.url + "/api/meta") as r:  # the cookie now
            assert r.status == 200
            assert (await r.json())["reviewer"] == "tester"
        async with http.get(s.url + "/api/meta", headers={"Host": f"evil.example:{port}"}) as r:
            assert r.status == 403  # DNS rebinding: not our Host
        body = {"items": [], "decision": "block"}
        async with http.post(s.url + "/api/decide", json=body) as r:
            assert r.status == 403  # no Origin: not from our page
        async with http.post(s.url + "/api/decide", json=body,
                             headers={"Origin": "http://evil.example"}) as r:  # fmt: skip
            assert r.status == 403
        async with http.post(s.url + "/api/decide", json=body, headers={"Origin": s.url}) as r:
            assert r.status == 200
        for bad in ("after=%5B1", "limit=x"):
            async with http.get(f"{s.url}/api/queue?{bad}") as r:
                assert r.status == 400
        for path in ("/static/app.js", "/static/app.css"):
            async with http.get(s.url + path) as r:
                assert r.status == 200
        async with http.get(s.url + "/static/../app.py") as r:
            assert r.status in (403, 404)


async def test_keyset_pages_are_the_whole_ordered_queue(tmp_path: Path) -> None:
    async with serve(tmp_path, 1500) as s:
        where = QueueFilter(decisions=())
        everything, _ = await s.store.queue(s.target, where, limit=10_000)
        assert len(everything) > 60
        assert [r["result"] for r in everything] == sorted(
            (r["result"] for r in everything), key=lambda x: {2: 0, 1: 1}[x]
        )
        pages: list[dict[str, Any]] = []
        after: Cursor | None = None
        while True:
            rows, after = await s.store.queue(s.target, where, after, limit=7)
            pages += rows
            if after is None:
                break
        assert [r["key"] for r in pages] == [r["key"] for r in everything]
        counts = await s.store.queue_counts(s.target, where)
        assert sum(counts.values()) == len(everything)


def chromium() -> str:
    """Debian's Chromium, or a one-line skip (a failure where CI requires the browser)."""
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        path = None
    reason = "browser tests skipped: no chromium (apt-get install chromium) or no playwright"
    return required_tool(path, reason, "REVIEW_BROWSER_REQUIRED")


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@pytest.mark.slow  # a browser
async def test_decide_twenty_with_the_keyboard_and_reload(tmp_path: Path) -> None:
    chromium()
    from playwright.async_api import expect

    async with serve(tmp_path, 3000, seed=1, copies=0.0) as s, browser() as b:  # the demo album
        page = await b.new_page(viewport={"width": 1400, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(f"{s.url}/?token={TOKEN}")
        await page.wait_for_selector(".card")
        if shot := os.environ.get("REVIEW_SCREENSHOT"):  # the README's picture: the demo album
            await page.locator(".card img").nth(9).wait_for()
            await page.wait_for_timeout(800)
            await page.screenshot(path=shot)
        await page.select_option("select[name=scan]", "all")
        await page.select_option("select[name=label]", "Porn")
        await page.select_option("select[name=band]", "sensitive")
        await page.locator(".card").nth(19).wait_for()  # (locator waits: no eval under the CSP)
        await page.wait_for_load_state("networkidle")  # the last filter's page, not an earlier
        await expect(page.locator(".card .verdict", has_text="Ads")).to_have_count(0)
        keys = await page.locator(".card .key").all_text_contents()
        await page.keyboard.press("j")
        await page.keyboard.press("k")
        started = time.monotonic()
        for _ in range(20):
            await page.keyboard.press("b")
            await page.wait_for_timeout(30)
        await page.locator(".card.decided-block").nth(19).wait_for()
        seconds = time.monotonic() - started  # what the page costs a reviewer, not the eye
        print(f"20 cards decided by keyboard in {seconds:.2f}s: {20 * 60 / seconds:,.0f}/min")
        await page.reload()
        await page.select_option("select[name=scan]", "all")
        await page.select_option("select[name=decision]", "block")
        await expect(page.locator(".card")).to_have_count(20)
        shown = await page.locator(".card .key").all_text_contents()
        assert sorted(shown) == sorted(keys[:20])
        rows, _ = await s.store.queue(s.target, QueueFilter(decisions=("block",)), limit=100)
        assert sorted(r["key"] for r in rows) == sorted(keys[:20])
        assert {r["reviewer"] for r in rows} == {"tester"}
        assert dialogs == []


@pytest.mark.slow  # a browser
async def test_hostile_keys_are_inert_text_and_no_token_is_403(tmp_path: Path) -> None:
    chromium()
    from playwright.async_api import expect

    async with serve(tmp_path, 300) as s, browser() as b:
        page = await b.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        denied = await page.goto(s.url + "/")
        assert denied is not None
        assert denied.status == 403
        await page.goto(f"{s.url}/?token={TOKEN}")
        await page.select_option("select[name=scan]", "all")
        await page.fill("input[name=prefix]", "nsfw/")
        await page.press("input[name=prefix]", "Enter")
        await expect(page.locator(".card")).to_have_count(2)
        shown = await page.locator(".card .key").all_text_contents()
        assert sorted(shown) == sorted(HOSTILE)
        await page.wait_for_timeout(500)
        assert dialogs == []  # nothing ran
        assert await page.locator("script", has_text="alert").count() == 0
        assert await page.locator("img[src=x]").count() == 0
        await page.click("#tab-overview")  # pictures: labels, scores, scans (inline SVG)
        await page.locator("#chart-labels svg rect").first.wait_for()
        await expect(page.locator("#chart-scores svg rect")).to_have_count(10)
        assert await page.locator("#chart-scans svg rect").count() == 3  # one scan: 3 bars
        if shot := os.environ.get("REVIEW_OVERVIEW_SCREENSHOT"):
            await page.screenshot(path=shot)


@pytest.mark.slow  # a browser
async def test_two_reviewers_at_once_lose_nothing(tmp_path: Path) -> None:
    chromium()
    async with serve(tmp_path, 3000) as s, browser() as b:
        pages = []
        for _ in range(2):
            context = await b.new_context()
            page = await context.new_page()
            await page.goto(f"{s.url}/?token={TOKEN}")
            await page.select_option("select[name=scan]", "all")
            await page.wait_for_selector(".card")
            await page.wait_for_load_state("networkidle")  # the grid of the final filter
            pages.append(page)

        async def decide(page: Any, button: str, start: int) -> None:
            for i in range(start, start + 10):
                await page.locator(".card").nth(i).get_by_role("button", name=button).click()

        async with anyio.create_task_group() as tg:
            tg.start_soon(decide, pages[0], "Block", 0)
            tg.start_soon(decide, pages[1], "Approve", 10)
        await pages[0].wait_for_timeout(500)
        counts = await s.store.review_counts(s.target)
        assert counts["block"] == 10
        assert counts["approve"] == 10


async def test_the_page_works_while_a_scan_writes_the_store(tmp_path: Path) -> None:
    """A forced rescan writes the same store (another connection) while the page reads the
    queue and saves decisions: every request answers, no 'database is locked'."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with serve(tmp_path, 1500) as s, aiohttp.ClientSession(cookie_jar=jar) as http:
        s.state.faults.latency = 0.01
        async with http.get(f"{s.url}/?token={TOKEN}"):
            pass
        statuses: list[int] = []

        async def rescan() -> None:
            result = await run_scan(s.cfg, anyio.Event(), Progress(), force=True)
            assert result.outcome == "done"

        async with anyio.create_task_group() as tg:
            tg.start_soon(rescan)
            for _ in range(30):
                async with http.get(f"{s.url}/api/queue?scan=all&decision=any&limit=5") as r:
                    statuses.append(r.status)
                    items = (await r.json())["items"]
                body = {"items": [{"key": items[0]["key"], "etag": items[0]["etag"]}],
                        "decision": "skip"}  # fmt: skip
                async with http.post(f"{s.url}/api/decide", json=body,
                                     headers={"Origin": s.url}) as r:  # fmt: skip
                    statuses.append(r.status)
                await anyio.sleep(0.02)
        assert set(statuses) == {200}


def test_the_command_prints_its_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from tests.helpers import read_line

    async def scanned() -> str:
        state = EmulatorState(bucket=synthetic(200, 72), seed=72)
        async with running(state) as url:
            cfg = config(url, tmp_path)
            assert (await run_scan(cfg, anyio.Event(), Progress())).outcome == "done"
            return cfg.store.path

    store = anyio.run(scanned)
    argv = [sys.executable, "-m", "scanner", "review", "--store", store, "--port", "0",
            "--no-browser", "--reviewer", "carol"]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        line = read_line(p.stdout, 30)
        assert " as carol: open http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url.split("?")[0], timeout=5)
        assert denied.value.code == 403
        denied.value.close()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url, timeout=5) as page:  # token -> cookie -> the page
            assert b"cos-scanner review" in page.read()
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0


async def test_the_doors(tmp_path: Path) -> None:
    """Issue 25, item 8: no off-site redirect; bad query values are 400 (a huge scan id was a
    500); /thumb and /image serve only keys with a verdict under the target; the cookie of one
    page does not open another (two pages coexist)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with serve(tmp_path, 300) as s, aiohttp.ClientSession(cookie_jar=jar) as http:
        for path in ("//evil.example/", "/\\evil.example/", "//evil.example/%2e%2e"):
            async with http.get(f"{s.url}{path}?token={TOKEN}", allow_redirects=False) as r:
                assert r.status == 302
                location = r.headers["Location"]
                assert location.startswith("/"), location
                assert not location.startswith(("//", "/\\")), location
        async with http.get(f"{s.url}/?token={TOKEN}&scan=all", allow_redirects=False) as r:
            assert r.headers["Location"] == "/?scan=all"  # the rest of the query kept
        async with http.get(f"{s.url}/?token={TOKEN}") as r:
            assert r.status == 200
        bad = ("scan=99999999999999999999999", "scan=-1", "scan=x", "result=7", "band=5-500",
               "band=x", "decision=maybe", "frozen=perhaps", "acted=2")  # fmt: skip
        for query in bad:
            for api in ("queue", "counts", "overview"):
                async with http.get(f"{s.url}/api/{api}?{query}") as r:
                    assert r.status == 400, (api, query, r.status)
                    assert "error" in await r.json()
                    assert r.headers["Content-Security-Policy"] == CSP
        async with http.get(f"{s.url}/api/queue?scan=all&band=60-100") as r:
            assert r.status == 200
            items = (await r.json())["items"]
        assert items
        shown = items[0]
        params = {"key": shown["key"], "etag": shown["etag"]}
        async with http.get(f"{s.url}/thumb", params=params) as r:
            assert r.status == 200
        secret = "secret/payroll.jpg"  # in the bucket, never audited: not the page's to show
        s.state.bucket.put(secret, StoredObject(etag_of(secret), 5000, datetime.now(UTC)))
        for key, etag in ((secret, etag_of(secret)), (shown["key"], "0" * 32)):
            for path in ("/thumb", "/image"):
                async with http.get(s.url + path, params={"key": key, "etag": etag}) as r:
                    assert r.status == 404, (path, key)
        # a second page on another port: its own cookie; this session opens nothing there
        settings = ReviewSettings(s.target, "other", "another-token-987654321")
        async with (
            HttpClient(CREDS) as client,
            serving(s.store, settings, Thumbs(client, s.cfg.cos), 0) as port2,
        ):
            other = f"http://127.0.0.1:{port2}"
            async with http.get(other + "/api/meta") as r:
                assert r.status == 403
            async with http.get(f"{other}/?token=another-token-987654321") as r:
                assert r.status == 200
            for url in (s.url, other):  # both sessions live side by side
                async with http.get(url + "/api/meta") as r:
                    assert r.status == 200
