"""Videos, voice notes and documents on the review page (issue 28, item 4): a video's card lists
its flagged frames with their times and shows them as stills the server fetches through a
fresh query of the job (the answer's URLs last two hours); a voice note's card shows its text
with the hit keywords; `act` works on them as on images."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from scanner.act.apply import ActProgress
from scanner.act.run import ActRequest, apply_act
from scanner.config.settings import JobSettings
from scanner.cos.client import HttpClient
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.bucket import MB, StoredObject, etag_of
from scanner.models import Target
from scanner.review.app import serving
from scanner.review.frames import Frames
from scanner.review.guard import ReviewSettings
from scanner.review.thumbs import Thumbs
from scanner.scan.progress import Progress
from scanner.store import ReportFilter, Store
from tests.helpers import CREDS, config, run_scan
from tests.review.test_review import TOKEN, Served, browser, chromium

VIDEO, VOICE, SLIDES = "u1/clip_nsfw.mp4", "u1/voice_ad_.m4a", "u1/nsfw_slides.pdf"


@contextlib.asynccontextmanager
async def serve_media(tmp_path: Path) -> AsyncIterator[tuple[Served, Frames]]:
    bucket = synthetic(200, 3)
    when = datetime.now(UTC)
    for key, size in ((VIDEO, 40 * MB), (VOICE, 700_000), (SLIDES, 900_000)):
        bucket.put(key, StoredObject(etag_of(key), size, when))
    bucket.keys()
    state = EmulatorState(bucket=bucket, seed=3, job_seconds=0.1)
    async with running(state) as url:
        cfg = config(url, tmp_path)
        cfg = replace(cfg, scan=replace(cfg.scan, media=("image", "video", "audio", "document")),
                      jobs=JobSettings(qps=200.0, poll_interval=0.05, poll_max=0.1))  # fmt: skip
        assert (await run_scan(cfg, anyio.Event(), Progress())).outcome == "done"
        target = Target.of(cfg.cos).id
        async with await Store.open(cfg.store.path) as store, HttpClient(CREDS) as http:
            thumbs = Thumbs(http, cfg.cos)
            frames = Frames.of(cfg, http, thumbs)
            settings = ReviewSettings(target, "tester", TOKEN)
            async with serving(store, settings, thumbs, 0, frames=frames) as port:
                yield Served(f"http://127.0.0.1:{port}", store, cfg, state, target), frames


async def get(s: Served, path: str, **query: str) -> tuple[int, str, bytes]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{s.url}/?token={TOKEN}"):
            pass
        async with http.get(s.url + path, params=query) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()


async def test_cards_carry_frames_and_speech_and_stills_come_from_a_fresh_query(
    tmp_path: Path,
) -> None:
    async with serve_media(tmp_path) as (s, frames):
        status, _, body = await get(s, "/api/queue", limit="200")
        assert status == 200
        cards: dict[str, Any] = {c["key"]: c for c in json.loads(body)["items"]}
        video, voice, slides = cards[VIDEO], cards[VOICE], cards[SLIDES]
        assert (video["media"], voice["media"], slides["media"]) == ("video", "audio", "document")
        assert video["frames"]
        assert all(f["kind"] == "frame" and f["label"] == "Porn" for f in video["frames"])
        assert [f["offset_ms"] for f in video["frames"]] == sorted(
            f["offset_ms"] for f in video["frames"]
        )
        assert all("url" not in f for f in video["frames"])  # the page never sees CI's URLs
        assert voice["spoken"]
        assert voice["frames"][0]["keywords"]
        assert all(k in voice["spoken"] for k in voice["frames"][0]["keywords"])
        assert slides["frames"][0]["page"] == 1
        queries = s.state.stats.requests["jobs"]
        for n in (0, 1):
            status, kind, data = await get(s, "/frame", key=VIDEO, etag=video["etag"], n=str(n))
            assert (status, kind) == (200, "image/jpeg"), data[-200:]
            assert data.startswith(b"\xff\xd8\xff")
        assert s.state.stats.requests["jobs"] == queries + 1  # one fresh query, then cached
        assert frames.queries == 1
        status, kind, data = await get(s, "/frame", key=SLIDES, etag=slides["etag"], n="0")
        assert (status, kind) == (200, "image/jpeg")
        status, kind, _ = await get(s, "/frame", key=VIDEO, etag=video["etag"], n="9999")
        assert (status, kind) == (200, "image/svg+xml")  # no such frame: a placeholder
        status, _, _ = await get(s, "/frame", key=VIDEO, etag="0" * 32, n="0")
        assert status == 404  # only objects with a verdict of that ETag
        # the stored answer's frame URLs last two hours (reference 12.5)
        raw = await s.store.iter_report(s.target, ReportFilter()).__anext__()
        stored = next(r for r in raw if r[0] == VIDEO)[-1]
        start, end = re.search(r"q-key-time=(\d+)%3B(\d+)", stored).groups()  # type: ignore[union-attr]
        assert int(end) - int(start) == 7200
        # act works on a video as on an image
        where = ReportFilter(prefix=VIDEO, results=(1, 2))
        with anyio.fail_after(60):
            done = await apply_act(s.cfg, ActRequest("private", where), anyio.Event(),
                                   ActProgress())  # fmt: skip
        assert done.outcome == "done"
        assert s.state.acls[f"{s.cfg.cos.bucket}/{VIDEO}"] == "private"


@pytest.mark.slow  # a browser
async def test_the_page_shows_a_videos_frames_and_a_voice_notes_words(tmp_path: Path) -> None:
    chromium()
    from playwright.async_api import expect

    async with serve_media(tmp_path) as (s, _frames), browser() as b:
        page = await b.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(f"{s.url}/?token={TOKEN}")
        await page.wait_for_selector(".card")
        video = page.locator(".card", has_text=VIDEO)
        await expect(video.locator(".frames li").first).to_contain_text("Porn")
        img = video.locator("img")
        await img.scroll_into_view_if_needed()
        for _ in range(100):
            if await img.evaluate("i => i.complete && i.naturalWidth > 0"):
                break
            await anyio.sleep(0.1)
        assert await img.evaluate("i => i.naturalWidth") > 0  # the first flagged frame
        voice = page.locator(".card", has_text=VOICE)
        await expect(voice.locator(".ocr mark").first).to_be_visible()
        await page.screenshot(path=str(tmp_path / "media-cards.png"))
        if shot := os.environ.get("REVIEW_MEDIA_SCREENSHOT"):
            await page.screenshot(path=shot)
        await video.locator(".frames li.still").nth(1).click()
        await expect(page.locator("#zoom")).to_be_visible()
        await expect(page.locator("#zoom-caption")).to_contain_text("2 of")
        zoomed = page.locator("#zoom-img")
        for _ in range(100):
            if await zoomed.evaluate("i => i.complete && i.naturalWidth > 0"):
                break
            await anyio.sleep(0.1)
        assert await zoomed.evaluate("i => i.naturalWidth") > 0
        await page.keyboard.press("]")
        await expect(page.locator("#zoom-caption")).to_contain_text("3 of")
        await page.screenshot(path=str(tmp_path / "media-zoom.png"))
