"""Decisions that act (issue 27, item 3): with `[review] on_block = "private"` a block on the
page makes the object private through the act machinery (an anonymous GET is refused), with
`on_approve = "restore"` an approve puts it back, each exactly once, and the card says so."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import aiohttp
import anyio
import pytest

from scanner.config import ReviewSettings as ReviewConfig
from scanner.cos.client import HttpClient
from scanner.errors import ConfigError
from scanner.review.acting import act_on_decisions, decision_acts
from scanner.review.app import serving
from scanner.review.feedback import send_feedback
from scanner.review.guard import ReviewSettings
from scanner.review.thumbs import Thumbs
from scanner.watch import Nudge
from tests.helpers import CREDS
from tests.review.test_review import TOKEN, Served, browser, chromium, serve


@contextlib.asynccontextmanager
async def acting_page(s: Served) -> AsyncIterator[str]:
    config = replace(s.cfg, review=ReviewConfig(on_block="private", on_approve="restore"))
    decided = Nudge()
    async with HttpClient(CREDS) as http, anyio.create_task_group() as tg:
        settings = ReviewSettings(s.target, "dana", TOKEN, report_badcase=True)
        async with serving(s.store, settings, Thumbs(http, s.cfg.cos), 0, decided) as port:
            tg.start_soon(lambda: act_on_decisions(config, decision_acts(config), decided))
            tg.start_soon(lambda: send_feedback(s.store, http, s.cfg.cos, s.cfg.audit, poll=0.1))
            yield f"http://127.0.0.1:{port}"
            tg.cancel_scope.cancel()


async def anonymous(s: Served, key: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{s.cfg.cos.endpoint}/{quote(key)}") as r:
            return r.status


def test_quarantine_without_a_place_is_refused(tmp_path: Path) -> None:
    from tests.helpers import config

    cfg = replace(
        config("http://127.0.0.1:9", tmp_path), review=ReviewConfig(on_block="quarantine")
    )
    with pytest.raises(ConfigError, match="needs \\[act\\] quarantine_to"):
        decision_acts(cfg)


async def test_a_block_makes_it_private_and_an_approve_puts_it_back(tmp_path: Path) -> None:
    chromium()
    from playwright.async_api import expect

    async with serve(tmp_path, 600, seed=79, copies=0.0) as s, acting_page(s) as url:
        async with browser() as b:
            page = await b.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(f"{url}/?token={TOKEN}")
            await page.wait_for_selector(".card")
            key = (await page.locator(".card .key").first.text_content()) or ""
            assert await anonymous(s, key) == 200  # public-read, as uploaded
            await page.keyboard.press("b")
            card = page.locator(".card").first
            await expect(card.locator(".decision")).to_contain_text(
                re.compile(r"block \(dana, .*\) · private"), timeout=20_000
            )
            assert await anonymous(s, key) == 403  # taken down
            await page.keyboard.press("k")  # back to it: a false positive after all
            await page.keyboard.press("a")
            await expect(card.locator(".decision")).to_have_text(
                re.compile(r"^approve \(dana, [^)]*\)$"), timeout=20_000
            )
            await page.screenshot(path=str(tmp_path / "acted.png"))
        for _ in range(50):
            if await anonymous(s, key) == 200:
                break
            await anyio.sleep(0.1)
        assert await anonymous(s, key) == 200  # public again
        # the block agreed with the service, the approve did not: told once, as Normal
        assert [(c["Label"], c["SuggestedLabel"]) for c in s.state.stats.badcases] == [
            (s.state.stats.badcases[0]["Label"], "Normal")
        ]
        assert s.state.stats.badcases[0]["Label"] != "Normal"
        async with s.store._conn.execute(
            "SELECT r.action, j.state FROM journal j JOIN act_runs r ON r.id = j.run_id "
            "WHERE j.key = ? ORDER BY r.id",
            (key,),
        ) as cur:
            assert list(await cur.fetchall()) == [("private", "done"), ("restore", "done")]
        assert s.state.stats.writes[f"{s.cfg.cos.bucket}/{key}"] == 2  # once each


async def test_a_block_can_quarantine_and_an_approve_bring_it_back(tmp_path: Path) -> None:
    """on_block = "quarantine": the copy goes to [act] quarantine_to and the object leaves the
    album; the approve copies it back (only where the key is empty)."""
    from scanner.config import ActSettings
    from scanner.emulator import Bucket

    async with serve(tmp_path, 400, seed=80, copies=0.0) as s:
        s.state.extra_buckets["quarantine-1250000000"] = Bucket()
        config = replace(
            s.cfg,
            review=ReviewConfig(on_block="quarantine", on_approve="restore"),
            act=ActSettings(quarantine_to="cos://quarantine-1250000000/held/"),
        )
        async with s.store._conn.execute(
            "SELECT key, etag FROM verdicts WHERE result = 1 ORDER BY key LIMIT 1"
        ) as cur:
            ((key, etag),) = list(await cur.fetchall())
        target = s.target
        decided = Nudge()
        acts = decision_acts(config)

        async def apply_until(done: Callable[[], bool]) -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: act_on_decisions(config, acts, decided, poll=0.2))
                with anyio.fail_after(20):
                    while not done():  # noqa: ASYNC110 - the bucket's objects have no event
                        await anyio.sleep(0.05)
                tg.cancel_scope.cancel()

        held = s.state.extra_buckets["quarantine-1250000000"]
        await s.store.decide(target, [(key, etag)], "block", "erin")
        await apply_until(lambda: key not in s.state.bucket.objects)
        assert f"held/{key}" in held.objects
        assert await anonymous(s, key) == 404
        await s.store.decide(target, [(key, etag)], "approve", "erin")
        await apply_until(lambda: key in s.state.bucket.objects)
        assert await anonymous(s, key) == 200
