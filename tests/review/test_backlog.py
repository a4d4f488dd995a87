"""The review queue is the backlog (issue 27, item 1): every undecided Result 2 then 1 of the
target across all scans, objects gone or acted on out of it (a filter shows them), counts
beside each filter choice, a target selector that includes URL lists, and an Overview that
stays hidden behind the queue."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from scanner.act.apply import ActProgress
from scanner.act.run import ActRequest, apply_act
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.scan.progress import Progress
from scanner.sources.urls import url_target
from scanner.store import ReportFilter
from tests.helpers import run_scan
from tests.review.test_review import TOKEN, Served, browser, chromium, serve


async def api(s: Served, path: str, **query: str) -> Any:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{s.url}/?token={TOKEN}"):
            pass
        async with http.get(s.url + path, params=query) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def keys(s: Served, **query: str) -> list[str]:
    got = await api(s, "/api/queue", limit="200", **query)
    return [i["key"] for i in got["items"]]


async def test_the_default_queue_is_every_scans_backlog(tmp_path: Path) -> None:
    async with serve(tmp_path, 600, seed=72, copies=0.0) as s:
        first = await keys(s)
        # a night later: new uploads, flagged by the nightly (scan 2)
        for i in range(6):
            key = f"nsfw/night2-{i}.jpg"
            s.state.bucket.put(key, StoredObject(etag_of(key), 40_000, datetime.now(UTC)))
        with anyio.fail_after(60):
            assert (await run_scan(s.cfg, anyio.Event(), Progress(), mode="incremental")).outcome
        backlog = await keys(s)
        latest = await keys(s, scan="latest")
        assert set(first) < set(backlog)  # yesterday's cards are still there
        assert set(latest) == set(backlog) - set(first)
        assert {k for k in latest if k.startswith("nsfw/night2-")} == set(latest)
        counts = await api(s, "/api/counts")
        assert sum(counts["counts"].values()) == counts["choices"]["decision:undecided"]
        assert counts["choices"]["decision:undecided"] >= len(backlog)


async def test_acted_and_gone_objects_leave_the_queue(tmp_path: Path) -> None:
    async with serve(tmp_path, 600, seed=73, copies=0.0) as s:
        queue = await keys(s)
        acted, gone = queue[0], queue[1]
        where = ReportFilter(prefix=acted, results=(1, 2))
        with anyio.fail_after(60):
            done = await apply_act(s.cfg, ActRequest("private", where), anyio.Event(),
                                   ActProgress())  # fmt: skip
        assert done.outcome == "done"
        s.state.bucket.delete(gone)
        with anyio.fail_after(60):
            await run_scan(s.cfg, anyio.Event(), Progress(), mode="incremental")
        now = await keys(s)
        assert acted not in now
        assert gone not in now
        assert acted in await keys(s, acted="yes")
        assert gone in await keys(s, gone="yes", acted="any")
        choices = (await api(s, "/api/counts"))["choices"]
        assert choices["acted"] >= 1
        assert choices["gone"] >= 1


async def test_a_url_lists_verdicts_are_reviewed_on_the_page(tmp_path: Path) -> None:
    chromium()
    from playwright.async_api import expect

    async with serve(tmp_path, 300, seed=74, copies=0.0) as s:
        listing = tmp_path / "urls.txt"
        base = s.cfg.cos.endpoint
        wanted = [k for k in s.state.bucket.objects if k.startswith("nsfw/")][:5]
        listing.write_text("".join(f"{base}/{k}\n" for k in wanted))
        with anyio.fail_after(60):
            await run_scan(s.cfg, anyio.Event(), Progress(), urls=listing)
        target = url_target(listing.resolve()).id
        meta = await api(s, "/api/meta")
        assert target in meta["targets"]
        assert s.target in meta["targets"]
        listed = await keys(s, target=target)
        assert listed
        assert all(k.startswith(base) for k in listed)
        async with browser() as b:
            page = await b.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(f"{s.url}/?token={TOKEN}")
            await page.wait_for_selector(".card")
            assert not await page.is_visible("#overview")  # hidden means hidden
            await page.select_option("#target", target)
            first = page.locator(".card .key").first
            await expect(first).to_have_text(re.compile(r"^http"))
            img = page.locator(".card img").first
            await img.scroll_into_view_if_needed()
            for _ in range(100):  # the picture, fetched from its URL by the server
                if await img.evaluate("i => i.complete && i.naturalWidth > 0"):
                    break
                await anyio.sleep(0.1)
            assert await img.evaluate("i => i.naturalWidth") > 0
            await page.keyboard.press("b")  # decided on the URL list's own target
            await page.wait_for_selector(".card.decided-block")
            await page.screenshot(path=str(tmp_path / "url-list.png"))
        decided = await keys(s, target=target, decision="block")
        assert decided == [listed[0]]
