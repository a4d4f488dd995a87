"""Decisions that say CI was wrong, told to it (issue 27, item 4): `POST /report/badcase` once
per decision, queued in the store, retried, counted in `status`; the official SDK's
`ci_auditing_report_badcase` works against the emulator."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from qcloud_cos.cos_exception import CosServiceError

from scanner.cos.client import HttpClient
from scanner.emulator import (
    DEFAULT_BUCKET,
    EmulatorState,
    running,
)
from scanner.review.app import serving
from scanner.review.feedback import send_feedback
from scanner.review.guard import ReviewSettings
from scanner.review.thumbs import Thumbs
from tests.helpers import CREDS, sdk_client
from tests.review.test_review import TOKEN, Served, serve


async def test_the_sdks_badcase_call_works_against_the_emulator() -> None:
    state = EmulatorState()
    async with running(state) as url:
        client = sdk_client(url)

        def call() -> Any:
            return client.ci_auditing_report_badcase(
                Bucket=DEFAULT_BUCKET, ContentType=2, Label="Porn", SuggestedLabel="Normal",
                Url="https://example.com/a.jpg", JobId="si1",
                ModerationTime="2026-12-01T00:00:00+08:00",
            )  # fmt: skip

        answer = await anyio.to_thread.run_sync(call)
        assert answer["RequestId"]
        with pytest.raises(CosServiceError) as refused:
            await anyio.to_thread.run_sync(
                lambda: client.ci_auditing_report_badcase(
                    Bucket=DEFAULT_BUCKET, ContentType=2, Label="Porn", SuggestedLabel="Normal"
                )
            )
        assert refused.value.get_status_code() == 400  # an image case needs its Url
    assert state.stats.badcases == [{
        "ContentType": "2", "Label": "Porn", "SuggestedLabel": "Normal",
        "Url": "https://example.com/a.jpg", "JobId": "si1",
        "ModerationTime": "2026-12-01T00:00:00+08:00",
    }]  # fmt: skip


@contextlib.asynccontextmanager
async def feedback_page(s: Served) -> AsyncIterator[str]:
    """A second page on the same store that tells the service (report_badcase)."""
    async with HttpClient(CREDS) as http:
        settings = ReviewSettings(s.target, "carol", TOKEN, report_badcase=True)
        async with serving(s.store, settings, Thumbs(http, s.cfg.cos), 0) as port:
            yield f"http://127.0.0.1:{port}"


async def decide(url: str, items: list[dict[str, Any]], decision: str, **more: Any) -> Any:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{url}/?token={TOKEN}"):
            pass
        body = {"items": items, "decision": decision, **more}
        async with http.post(url + "/api/decide", json=body, headers={"Origin": url}) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def drain(s: Served, waits: tuple[float, ...] = (0.2,), seconds: float = 1.5) -> None:
    async with HttpClient(CREDS) as http, anyio.create_task_group() as tg:
        tg.start_soon(lambda: send_feedback(s.store, http, s.cfg.cos, s.cfg.audit, poll=0.05,
                                            waits=waits))  # fmt: skip
        await anyio.sleep(seconds)
        tg.cancel_scope.cancel()


async def rows(s: Served, sql: str) -> list[Any]:
    async with s.store._conn.execute(sql) as cur:
        return list(await cur.fetchall())


async def test_an_approve_and_a_block_are_told_once_each(tmp_path: Path) -> None:
    async with serve(tmp_path, 400, seed=75, copies=0.0) as s, feedback_page(s) as url:
        (flagged,) = await rows(s, "SELECT key, etag, label, job_id FROM verdicts WHERE result = 1 "
                                   "ORDER BY key LIMIT 1")  # fmt: skip
        (normal,) = await rows(s, "SELECT key, etag FROM verdicts WHERE result = 0 "
                                  "ORDER BY key LIMIT 1")  # fmt: skip
        item = {"key": flagged[0], "etag": flagged[1]}
        await decide(url, [item], "approve")
        await decide(url, [item], "approve")  # the same decision again: nothing new to tell
        await decide(url, [{"key": normal[0], "etag": normal[1]}], "block", label="Ads")
        await drain(s)
        await decide(url, [item], "skip")
        await decide(url, [item], "approve")  # approved once more: told already
        await drain(s, seconds=0.5)
        cases = s.state.stats.badcases
        assert len(cases) == 2
        approve = next(c for c in cases if c["SuggestedLabel"] == "Normal")
        assert approve["Label"] == flagged[2]
        assert approve["ContentType"] == "2"
        assert approve["JobId"] == flagged[3]
        assert approve["ModerationTime"].endswith("+00:00")
        block = next(c for c in cases if c["SuggestedLabel"] == "Ads")
        assert block["Label"] == "Normal"
        async with aiohttp.ClientSession() as http:  # the Url is one the service can fetch
            async with http.get(approve["Url"]) as r:
                assert r.status == 200
        assert (await s.store.badcase_counts(s.target))["sent"] == 2


async def test_an_undo_before_sending_withdraws_and_failures_are_retried(tmp_path: Path) -> None:
    async with serve(tmp_path, 400, seed=76, copies=0.0) as s, feedback_page(s) as url:
        flagged = await rows(s, "SELECT key, etag FROM verdicts WHERE result = 1 ORDER BY key "
                                "LIMIT 3")  # fmt: skip
        first, second, third = ({"key": k, "etag": e} for k, e in flagged)
        await decide(url, [first], "approve")
        await decide(url, [first], "undo")  # before anything was sent: withdrawn
        s.state.faults.targets = ["badcase"]
        s.state.faults.fail_next = [503, 500]  # the service's trouble: tried again
        await decide(url, [second], "approve")
        await drain(s, waits=(0.1, 0.1, 0.1), seconds=2.0)
        assert [
            c["Url"].split("?")[0].endswith(second["key"].split("/")[-1])
            for c in s.state.stats.badcases
        ] == [True]
        s.state.faults.fail_next = [400]  # refused as it is: failed for good
        await decide(url, [third], "approve")
        await drain(s, waits=(0.1, 0.1), seconds=1.0)
        assert len(s.state.stats.badcases) == 1
        counts = await s.store.badcase_counts(s.target)
        assert counts == {"pending": 0, "sent": 1, "failed": 1}
        (attempts,) = await rows(s, "SELECT attempts FROM badcases WHERE state = 'sent'")
        assert attempts == (3,)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[cos]\nbucket = "{s.cfg.cos.bucket}"\n[store]\npath = "{s.cfg.store.path}"\n')
    done = await anyio.run_process(
        [sys.executable, "-m", "scanner", "status", "--config", str(cfg)], check=False
    )
    assert "wrong verdicts told to the service: 1 sent, 0 waiting, 1 failed" in done.stdout.decode()
