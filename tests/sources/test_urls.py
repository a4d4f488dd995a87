"""URL lists (`scan --urls`): pages by line number, resume, a changed list refused, every
entry in its right terminal state, on both backends, against the emulator (which fetches
each URL for real over loopback)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, unquote

import anyio
import pytest

from scanner.cli import main
from scanner.config import ImsSettings
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.ims import CODES
from scanner.emulator.rules import verdict_for
from scanner.scan.progress import Progress
from scanner.sources.urls import UrlList
from tests.helpers import (
    ENV,
    config,
    db_rows,
    emulator_process,
    run_scan,
    stats,
    wait_until,
    write_config,
)
from tests.helpers import scan_process as scan

DEAD = "http://127.0.0.1:1/gone-{}.jpg"  # connection refused: download fails (retryable)


async def test_pages_are_numbered_by_line_and_resume_there(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    lines = ["# a comment", "http://a/1.jpg", "", "http://a/2.jpg", "http://a/1.jpg", "ftp://x"]
    lines += [f"https://b/{i}.png" for i in range(10)]
    path.write_text("\n".join(lines) + "\n")
    source = UrlList(path, page_size=4)
    first = await source.page("")
    assert [r.key for r in first.objects] == ["http://a/1.jpg", "http://a/2.jpg", "ftp://x",
                                               "https://b/0.png"]  # fmt: skip
    assert first.next_marker == "7"  # lines 1..7 read (the repeat of 1.jpg counted once)
    again = UrlList(path, page_size=4)  # a resumed scan opens the file anew at the marker
    assert (await again.page("7")).objects == (await source.page("7")).objects
    keys = []
    marker: str | None = ""
    while marker is not None:
        page = await again.page(marker)
        keys += [r.key for r in page.objects]
        marker = page.next_marker
    assert len(keys) == 4 + 9
    source.close()
    again.close()


async def test_csv_with_a_url_column(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text('id,URL,note\n1,http://a/1.jpg,"x, y"\n2,"http://a/2,3.jpg",z\n3,,\n')
    source = UrlList(path)
    page = await source.page("")
    source.close()
    assert [r.key for r in page.objects] == ["http://a/1.jpg", "http://a/2,3.jpg"]


def _album_urls(state: EmulatorState, url: str, n: int) -> list[str]:
    return [f"{url}/{quote(k)}" for k in sorted(state.bucket.objects)[:n]]


def _expected(
    state: EmulatorState, url: str, entry: str, service: str = "ci"
) -> tuple[str, object]:
    """(terminal state, result or failure code) the emulator's rules give a list entry (IMS
    judges 5-32 MB images, and names failures with its own codes)."""
    ims = service == "ims"
    if not entry.startswith("http"):
        return "skipped", "not-a-url"
    if entry.startswith("http://127.0.0.1:1/"):
        return "failed", CODES["-65010"][0] if ims else "-65010"
    key = unquote(entry[len(url) + 1 :])
    v = verdict_for(key, state.bucket.objects[key], large_image_detect=ims)
    if v.code:
        return "failed", CODES[v.code][0] if ims else v.code
    return "audited", int(v.result)


@pytest.mark.parametrize("service", ["ci", "ims"])
def test_a_url_list_scan_ends_with_every_entry_in_its_state(
    service: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = EmulatorState(bucket=synthetic(400, 41), seed=41)
    path = tmp_path / "urls.txt"

    async def run() -> str:
        async with running(state) as url:
            entries = _album_urls(state, url, 300) + [DEAD.format(i) for i in range(5)]
            entries += ["not a url", "ftp://host/a.jpg"]
            path.write_text("\n".join(entries) + "\n")
            cfg = config(url, tmp_path, batch_size=25)
            cfg = replace(cfg, scan=replace(cfg.scan, max_attempts=2))
            if service == "ims":
                cfg = replace(cfg, audit=replace(cfg.audit, service="ims"),
                              ims=ImsSettings(endpoint=url, qps=500, concurrency=8))  # fmt: skip
            with anyio.fail_after(120):
                result = await run_scan(cfg, anyio.Event(), Progress(), urls=UrlList(path))
            return url if result.outcome == "done" else result.outcome

    url = anyio.run(run)
    assert url.startswith("http"), url
    entries = path.read_text().split("\n")[:-1]
    want = {e: _expected(state, url, e, service) for e in entries}
    assert main(["report", "--urls", str(path), "--store", str(tmp_path / "scan.db"),
                 "--format", "jsonl"]) == 0  # fmt: skip
    rows = {r["key"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    got = {
        k: (r["state"], r["result"] if r["state"] == "audited" else r["reason"])
        for k, r in rows.items()
    }
    assert got == want
    billed = state.stats.audits
    assert max(billed.values()) == 1  # none audited twice
    assert (
        main(["status", "--urls", str(path), "--store", str(tmp_path / "scan.db"), "--json"]) == 0
    )
    (status,) = json.loads(capsys.readouterr().out)
    assert status["target"] == f"urls://{path.resolve()}"


@pytest.mark.slow
def test_kill_nine_and_resume_a_list_of_ten_thousand(tmp_path: Path) -> None:
    """10,000 entries: album URLs, URLs that cannot be fetched, things that are not URLs,
    non-images; killed three times, resumed, every entry ends in its right state and no URL
    was paid for more than what was in flight at the kills."""
    store, log, path = tmp_path / "scan.db", tmp_path / "scan.log", tmp_path / "urls.txt"
    state = EmulatorState(bucket=synthetic(9800, 42), seed=42)
    with emulator_process("--objects", "9800", "--seed", "42", "--latency", "0.01") as url:
        entries = _album_urls(state, url, 9800) + [DEAD.format(i) for i in range(150)]
        entries += [f"not-a-url-{i}" for i in range(50)]
        path.write_text("\n".join(entries) + "\n")
        cfg = write_config(tmp_path / "c.toml", url, store, concurrency=2, batch_size=50)
        cfg.write_text(cfg.read_text().replace("[scan]\n", "[scan]\nmax_attempts = 2\n"))
        for n in (1000, 4000, 7000):
            proc = scan(cfg, log, "--urls", str(path))
            wait_until(lambda n=n: stats(url)["sent_images"] >= n, proc, timeout=120)  # type: ignore[misc]
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        proc = scan(cfg, log, "--urls", str(path))
        assert proc.wait(timeout=300) in (0, 3), log.read_text()[-2000:]
        s = stats(url, detail=True)
    assert len(entries) == 10_000
    rows = db_rows(store, "SELECT key, state, reason FROM scan_objects")
    assert len(rows) == 10_000
    states = {k: (st, reason) for k, st, reason in rows}
    want = Counter(_expected(state, url, e)[0] for e in entries)
    assert Counter(st for st, _ in states.values()) == want
    for e in entries:
        expected_state, detail = _expected(state, url, e)
        if expected_state != "audited":
            assert states[e] == (expected_state, detail), e
    in_flight = 3 * 2 * 50
    assert sum(n - 1 for n in s["audits"].values()) <= in_flight
    assert db_rows(store, "SELECT COUNT(*) FROM scan_objects WHERE state = 'pending'") == [(0,)]


def test_a_changed_list_is_refused_for_resume(tmp_path: Path) -> None:
    with emulator_process("--objects", "300", "--seed", "43") as url:
        state = EmulatorState(bucket=synthetic(300, 43), seed=43)
        path = tmp_path / "urls.txt"
        original = "\n".join(_album_urls(state, url, 200)) + "\n"
        path.write_text(original)
        cfg = write_config(tmp_path / "c.toml", url, tmp_path / "s.db", batch_size=20)
        argv = [sys.executable, "-m", "scanner", "scan", "--config", str(cfg), "--urls", str(path)]

        def run(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*argv, *extra], env=ENV, capture_output=True, text=True, check=False
            )

        assert run("--max-images", "40").returncode == 4  # paused
        path.write_text(original + f"{url}/extra.jpg\n")
        changed = run()
        assert changed.returncode == 2
        assert "changed since scan 1 began" in changed.stderr
        assert len(changed.stderr.strip().splitlines()) == 1
        path.write_text(original)
        assert run().returncode == 3  # done; some entries are not images (failed)
        piped = subprocess.run([*argv[:-1], "-"], env=ENV, input=original, capture_output=True,
                               text=True, check=False)  # fmt: skip
        assert piped.returncode == 3, piped.stderr
        spooled = list((tmp_path / ".cos-scanner-urls").glob("*.txt"))
        assert len(spooled) == 1
        assert spooled[0].read_text() == original


def test_url_identity_drops_signatures_and_credentials() -> None:
    from scanner.sources.urls import fetch_url, url_identity, url_problem, url_ref

    signed = (
        "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b.jpg?q-sign-algorithm=sha1"
        "&q-ak=AKID&q-sign-time=1%3B2&q-key-time=1%3B2&q-header-list=host&q-url-param-list="
        "&q-signature=abc&x-cos-security-token=tok&imageMogr2/thumbnail/100x"
    )
    assert url_identity(signed) == (
        "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b.jpg?imageMogr2%2Fthumbnail%2F100x="
    )
    s3 = "https://s3.example.com/k.png?X-Amz-Algorithm=A&X-Amz-Signature=s&X-Amz-Expires=60&v=2"
    assert url_identity(s3) == "https://s3.example.com/k.png?v=2"
    cdn = "https://cdn.example.com/p.jpg?sign=abc&t=5f5e1000#frag"
    assert url_identity(cdn) == "https://cdn.example.com/p.jpg"
    assert url_identity("https://cdn.example.com/p.jpg?t=2") == "https://cdn.example.com/p.jpg?t=2"
    ref = url_ref(s3)
    assert (ref.key, fetch_url(ref)) == ("https://s3.example.com/k.png?v=2", s3)
    plain = url_ref("https://x.example.com/a.jpg")
    assert fetch_url(plain) == plain.key == "https://x.example.com/a.jpg"
    secret = url_ref("http://alice:pw@x.example.com/a.jpg")
    assert secret.key == "http://***@x.example.com/a.jpg"
    assert "pw" not in repr(secret)
    assert url_problem(fetch_url(secret)) == "not-a-url: credentials in URL"


def test_a_grown_resigned_list_bills_only_its_new_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 25, item 3: a plain scan of a finished list audits the lines appended to it;
    tomorrow's export of the same pictures, signed again, bills nothing again; no signature
    and no credentials reach the store or a report."""
    from scanner.cos.client import HttpClient, cos_service
    from tests.helpers import CREDS

    state = EmulatorState(bucket=synthetic(200, 44), seed=44)
    path = tmp_path / "urls.txt"
    keys = [
        k for k in sorted(state.bucket.objects) if not verdict_for(k, state.bucket.objects[k]).code
    ]

    async def run() -> list[str]:
        async with running(state) as url, HttpClient(CREDS) as http:
            cfg = config(url, tmp_path, batch_size=10)
            service = cos_service(cfg.cos)

            def signed(ks: list[str], seconds: int) -> list[str]:
                return [http.presign(service, k, seconds) for k in ks]

            secret = url.replace("http://", "http://alice:s3cret@") + "/" + quote(keys[0])
            path.write_text("\n".join([*signed(keys[:30], 3600), secret]) + "\n")
            outcomes = [
                (await run_scan(cfg, anyio.Event(), Progress(), urls=UrlList(path))).outcome
            ]
            first = sum(state.stats.audits.values())
            # the next day's export: the same pictures signed again, and 10 more
            path.write_text("\n".join([*signed(keys[:40], 7200), secret]) + "\n")
            outcomes.append(
                (await run_scan(cfg, anyio.Event(), Progress(), urls=UrlList(path))).outcome
            )
            outcomes.append(str(sum(state.stats.audits.values()) - first))
            outcomes.append(
                (await run_scan(cfg, anyio.Event(), Progress(), urls=UrlList(path))).outcome
            )
            return [str(first), *outcomes]

    first, one, two, added, three = anyio.run(run)
    assert (first, one, two, added) == ("30", "done", "done", "10")
    assert three == "nothing"  # the same list again: nothing to do
    assert max(state.stats.audits.values()) == 1  # no picture billed twice
    store = tmp_path / "scan.db"
    everything = "\n".join(map(str, db_rows(store, "SELECT * FROM scan_objects")))
    assert "s3cret" not in everything
    assert "alice" not in everything
    stored = "\n".join(map(str, db_rows(store, "SELECT key FROM scan_objects UNION ALL "
                                               "SELECT key FROM verdicts")))  # fmt: skip
    assert "q-sign" not in stored  # the signed URL is kept only to fetch it on a resume
    assert main(["report", "--urls", str(path), "--store", str(store), "--format", "jsonl"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 41
    assert not any("q-sign" in r["key"] for r in rows)
    (skipped,) = [r for r in rows if r["state"] == "skipped"]
    assert skipped["reason"] == "not-a-url: credentials in URL"
    assert skipped["key"].startswith("http://***@")


def test_ims_content_input_is_refused_for_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 25, item 3: `[ims] input = "content"` is not silently ignored for URL items: a
    URL list (and `check URL`) under it is refused in one line, before any request."""
    from tests.helpers import CREDS

    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", CREDS.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", CREDS.secret_key)
    cfg = write_config(tmp_path / "c.toml", "http://127.0.0.1:1", tmp_path / "s.db")
    cfg.write_text(cfg.read_text().replace("[audit]\n", '[audit]\nservice = "ims"\n')
                   + '[ims]\nendpoint = "http://127.0.0.1:1"\ninput = "content"\n')  # fmt: skip
    path = tmp_path / "urls.txt"
    path.write_text("https://cdn.example.com/a.jpg\n")
    assert main(["migrate", "--config", str(cfg)]) == 0
    capsys.readouterr()
    for argv in (["scan", "--urls", str(path)], ["check", "https://cdn.example.com/a.jpg"]):
        assert main([*argv, "--config", str(cfg)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert 'input = "content" applies to bucket objects only' in err[0]
