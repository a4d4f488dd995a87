"""A team on one page (issue 27, item 2): two reviewers in two browser contexts get disjoint
cards (claims, released on a decision or when they expire), zoom, note and decisions by
keyboard, the verdict's and the decision's time, and per-reviewer figures in the Overview."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from scanner.cos.client import HttpClient
from scanner.review.app import serving
from scanner.review.guard import ReviewSettings
from scanner.review.thumbs import Thumbs
from tests.helpers import CREDS
from tests.review.test_review import TOKEN, Served, browser, chromium, serve


@contextlib.asynccontextmanager
async def page_of(s: Served, claim_seconds: float) -> AsyncIterator[str]:
    async with HttpClient(CREDS) as http:
        settings = ReviewSettings(s.target, "server", TOKEN, claim_seconds=claim_seconds)
        async with serving(s.store, settings, Thumbs(http, s.cfg.cos), 0) as port:
            yield f"http://127.0.0.1:{port}"


async def queue(url: str, holder: str, **query: str) -> list[str]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{url}/?token={TOKEN}"):
            pass
        params = {"holder": holder, "limit": "20", **query}
        async with http.get(url + "/api/queue", params=params) as r:
            assert r.status == 200, await r.text()
            return [i["key"] for i in (await r.json())["items"]]


async def test_claims_hold_cards_until_they_expire(tmp_path: Path) -> None:
    async with serve(tmp_path, 800, seed=77, copies=0.0) as s, page_of(s, 1.0) as url:
        first = await queue(url, "holder-aaaa-1111")
        second = await queue(url, "holder-bbbb-2222")
        assert first
        assert second
        assert not set(first) & set(second)  # never the same card
        assert await queue(url, "holder-aaaa-1111") == first  # a reload keeps its own
        await anyio.sleep(1.2)  # the first page was closed: its claims lapse
        third = await queue(url, "holder-cccc-3333")
        assert set(first) <= set(third) | set(second)
        assert set(third) & set(first)


async def test_two_reviewers_zoom_note_and_decide_by_keyboard(tmp_path: Path) -> None:
    chromium()
    from playwright.async_api import expect

    async with serve(tmp_path, 1500, seed=78, copies=0.0) as s, browser() as b:
        pages: dict[str, Any] = {}
        for name in ("alice", "bob"):
            context = await b.new_context(viewport={"width": 1400, "height": 900})
            page = await context.new_page()
            await page.goto(f"{s.url}/?token={TOKEN}")
            await page.fill("#reviewer", name)
            await page.press("#reviewer", "Enter")
            await page.wait_for_selector(".card")
            pages[name] = page
        shown = {n: await p.locator(".card .key").all_text_contents() for n, p in pages.items()}
        assert shown["alice"]
        assert shown["bob"]
        assert not set(shown["alice"]) & set(shown["bob"])  # disjoint cards

        alice = pages["alice"]
        started = time.monotonic()
        await alice.keyboard.press("z")  # zoom on the first card
        await expect(alice.locator("#zoom")).to_be_visible()
        caption = alice.locator("#zoom-caption")
        await expect(caption).to_contain_text(shown["alice"][0])
        await alice.keyboard.press("ArrowRight")
        await expect(caption).to_contain_text(shown["alice"][1])
        await alice.keyboard.press("ArrowLeft")
        await expect(caption).to_contain_text(shown["alice"][0])
        await alice.keyboard.press("Escape")
        await expect(alice.locator("#zoom")).to_be_hidden()
        await alice.keyboard.press("n")  # a note on the first card, then block it
        await alice.keyboard.type("logo of a banned group")
        await alice.keyboard.press("Enter")
        await alice.keyboard.press("b")
        await alice.keyboard.press("z")  # decisions work in the zoom view too
        await alice.keyboard.press("a")
        await alice.keyboard.press("Escape")
        await alice.keyboard.press("s")
        await expect(alice.locator(".card.decided-skip")).to_have_count(1)
        seconds = time.monotonic() - started
        first_card = alice.locator(".card").first
        await expect(first_card.locator(".decision")).to_contain_text(
            re.compile(r"block \(alice, \d{4}-\d\d-\d\d \d\d:\d\d UTC\)")
        )
        await alice.screenshot(path=str(tmp_path / "alice.png"))

        async with s.store._conn.execute(
            "SELECT key, decision, reviewer, note FROM decisions ORDER BY decided_at"
        ) as cur:
            rows = list(await cur.fetchall())
        assert [(r[0], r[1], r[2]) for r in rows] == [
            (shown["alice"][0], "block", "alice"),
            (shown["alice"][1], "approve", "alice"),
            (shown["alice"][2], "skip", "alice"),
        ]
        assert rows[0][3] == "logo of a banned group"
        # bob's reload gets his own cards back, never alice's undecided ones
        await pages["bob"].reload()
        await pages["bob"].wait_for_selector(".card")
        bob_now = await pages["bob"].locator(".card .key").all_text_contents()
        assert bob_now == shown["bob"]

        await alice.click("#tab-overview")
        table = alice.locator("#reviewers tbody tr")
        await expect(table).to_have_count(1)
        await expect(table.first).to_contain_text("alice")
        await expect(table.first.locator("td").nth(1)).to_have_text("3")
        await alice.screenshot(path=str(tmp_path / "overview.png"))
    print(f"three decisions, a zoom and a note by keyboard in {seconds:.1f}s")
