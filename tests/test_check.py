"""`cos-scanner check KEY|URL`: one image now through the CI single-image API or IMS, against
the emulator; the official SDK's single-image call works against the same emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import pytest
from qcloud_cos import CosConfig, CosS3Client

from scanner.cli import main
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
    synthetic,
)
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.emulator.rules import verdict_for
from tests.helpers import Emulator, emulator_process, stats

KEYS = ("nsfw/1.jpg", "ad_2.png", "plain/3.jpg")


def put(emulator: Emulator, *keys: str) -> None:
    for key in keys:
        emulator.state.bucket.put(key, StoredObject(etag_of(key), 5000, datetime.now(UTC)))


async def test_the_sdks_single_image_call_works_against_the_emulator(emulator: Emulator) -> None:
    put(emulator, *KEYS)
    parts = urlsplit(emulator.url)
    conf = CosConfig(Region="ap-guangzhou", SecretId=DEFAULT_SECRET_ID,
                     SecretKey=DEFAULT_SECRET_KEY, IP=parts.hostname, Port=parts.port,
                     Scheme="http")  # fmt: skip
    client = CosS3Client(conf, retry=0)

    def recognize(key: str) -> dict[str, Any]:
        got: dict[str, Any] = client.get_object_sensitive_content_recognition(
            Bucket=DEFAULT_BUCKET, Key=key, BizType="album", DataId="d1"
        )
        return got

    for key in KEYS:
        got = await anyio.to_thread.run_sync(recognize, key)
        rule = verdict_for(key, emulator.state.bucket.objects[key])
        assert (got["Result"], got["Label"], got["Score"]) == (
            str(rule.result),
            rule.label,
            str(rule.score),
        )
        assert got["DataId"] == "d1"
    by_url = await anyio.to_thread.run_sync(
        lambda: client.get_object_sensitive_content_recognition(
            Bucket=DEFAULT_BUCKET, DetectUrl=f"{emulator.url}/nsfw/1.jpg"
        )
    )
    assert by_url["Label"] == "Porn"
    assert emulator.state.stats.audits["nsfw/1.jpg"] == 2


def cfg_file(tmp_path: Path, url: str, service: str = "ci") -> Path:
    path = tmp_path / "c.toml"
    ims = f'[ims]\nendpoint = "{url}"\n' if service == "ims" else ""
    path.write_text(
        f'[cos]\nbucket = "{DEFAULT_BUCKET}"\nendpoint = "{url}"\n'
        f'[audit]\nservice = "{service}"\n{ims}[store]\npath = "{tmp_path / "s.db"}"\n'
    )
    return path


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)


@pytest.mark.parametrize("service", ["ci", "ims"])
def test_check_prints_stores_and_a_scan_reuses_it(
    service: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    state = EmulatorState(bucket=synthetic(300, 51), seed=51)
    with emulator_process("--objects", "300", "--seed", "51") as url:
        cfg = str(cfg_file(tmp_path, url, service))
        flagged = sorted(
            k for k, o in state.bucket.objects.items()
            if not verdict_for(k, o).code and verdict_for(k, o).result == 1
        )[0]  # fmt: skip
        rule = verdict_for(flagged, state.bucket.objects[flagged])
        assert main(["check", flagged, "--config", cfg, "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert (got["result"], got["label"], got["score"]) == (1, rule.label, rule.score)
        assert got["service"] == service
        assert main(["check", flagged, "--config", cfg, "--store", str(tmp_path / "s.db")]) == 0
        text = capsys.readouterr().out
        assert f"{flagged}: Result 1 (sensitive)  {rule.label}" in text
        assert main(["check", f"{url}/{quote(flagged)}", "--config", cfg]) == 0
        assert "Result 1" in capsys.readouterr().out
        assert main(["check", "no/such.jpg", "--config", cfg]) == 3
        assert "NoSuchKey" in capsys.readouterr().err
        assert main(["check", "ftp://x/y.jpg", "--config", cfg]) == 2
        before = stats(url, detail=True)["audits"]
        assert before[flagged] == 3  # check, check --store, check by URL
        assert main(["scan", "--config", cfg]) in (0, 3)
        after = stats(url, detail=True)["audits"]
    assert after[flagged] == 3  # the stored check verdict was reused: not billed again
    assert len(after) > 100


def test_a_wrong_key_on_ims_is_one_line_and_the_store_is_intact(
    tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The listing is done (a paused scan), so the resume's first call is IMS: its refusal
    (AuthFailure.SignatureFailure) ends the run in one line with the auth exit code."""
    import sqlite3

    with emulator_process("--objects", "300", "--seed", "52") as url:
        cfg = str(cfg_file(tmp_path, url, "ims"))
        assert main(["scan", "--config", cfg, "--max-images", "20"]) == 4  # paused
        db = tmp_path / "s.db"
        before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM verdicts").fetchone()
        capsys.readouterr()
        monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "wrong-key")
        assert main(["scan", "--config", cfg]) == 77
        err = [x for x in capsys.readouterr().err.splitlines() if " INFO " not in x]
        assert len(err) == 1, err
        assert "AuthFailure.SignatureFailure" in err[0]
        assert "Traceback" not in err[0]
        assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM verdicts").fetchone() == before
        monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
        assert main(["scan", "--config", cfg]) in (0, 3)


async def test_check_refuses_locally_what_a_scan_would_skip(
    emulator: Emulator, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 25, item 5: a video, an archived object, an empty one and one over the service's
    limit are refused in one line (exit 2) before anything is sent to the service."""
    now = datetime.now(UTC)
    bucket = emulator.state.bucket
    bucket.put("clips/a.mp4", StoredObject(etag_of("clips/a.mp4"), 5000, now))
    bucket.put("old/b.jpg", StoredObject(etag_of("old/b.jpg"), 5000, now, "DEEP_ARCHIVE"))
    bucket.put("empty/c.jpg", StoredObject(etag_of("empty/c.jpg"), 0, now))
    bucket.put("big/d.jpg", StoredObject(etag_of("big/d.jpg"), 20 << 20, now))
    bucket.put("big/f.jpg", StoredObject(etag_of("big/f.jpg"), 40 << 20, now))
    put(emulator, "fine/e.jpg")
    cfg = str(cfg_file(tmp_path, emulator.url))
    cases = {"clips/a.mp4": "video-not-enabled", "old/b.jpg": "archived", "empty/c.jpg": "empty",
             "big/d.jpg": "needs-large-image-detect", "big/f.jpg": "too-large"}  # fmt: skip
    for key, reason in cases.items():
        code = await anyio.to_thread.run_sync(main, ["check", key, "--config", cfg])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (key, err)
        assert len(err) == 1, err
        assert err[0].startswith(f"cos-scanner: not sent: {key!r}: a scan skips it ({reason}: ")
    assert emulator.state.stats.audits == {}  # nothing was sent to the service
    assert await anyio.to_thread.run_sync(main, ["check", "fine/e.jpg", "--config", cfg]) == 0
    assert set(emulator.state.stats.audits) == {"fine/e.jpg"}
