"""COS Inventory as input (`scan --inventory`): the emulator's Inventory read from COS and from
disk gives the same scan as a listing; the manifest and data files are checked; the reader
tolerates the details the reference leaves unconfirmed; hostile manifests are one line each."""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.control import churn
from scanner.emulator.inventory import generate
from scanner.errors import ConfigError
from scanner.models import ObjectRef
from scanner.scan.progress import Progress
from scanner.sources.inventory import InventorySource, LocalFiles, spool_dir
from scanner.sources.manifest import InventoryError, parse_manifest
from scanner.store import Store
from tests.helpers import (
    ENV,
    config,
    db_rows,
    emulator_process,
    run_dry,
    run_scan,
    stats,
    wait_until,
    write_config,
)
from tests.helpers import scan_process as scan


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _write_manifest(folder: Path, doc: dict[str, object], checksum: str | None = None) -> Path:
    body = json.dumps(doc).encode()
    path = folder / "manifest.json"
    path.write_bytes(body)
    (folder / "manifest.checksum").write_text(checksum if checksum is not None else _md5(body))
    return path


def _manifest_doc(
    files: list[tuple[str, bytes]], schema: str = "Appid, Bucket, Key, Size, LastModifiedDate, ETag"
) -> dict[str, object]:
    return {
        "sourceAppid": "1250000000",
        "sourceBucket": "album",
        "fileFormat": "CSV",
        "listObjectCount": "3",
        "fileSchema": schema,
        "files": [
            {"key": name, "size": str(len(data)), "md5Checksum": _md5(data)} for name, data in files
        ],
    }


async def _all(source: InventorySource) -> list[ObjectRef]:
    out: list[ObjectRef] = []
    marker: str | None = ""
    while marker is not None:
        page = await source.page(marker)
        out += page.objects
        marker = page.next_marker
    return out


@pytest.mark.parametrize(
    "text",
    [
        # every field quoted, ETag quoted, %20 for a space, %2B for a plus, ISO dates
        '"1250000000","album","a%20b%2Bc.jpg","10","2024-01-01T00:00:00.000Z","""0123"""\n'
        '"1250000000","album","d/e.png","20","2024-01-02T00:00:00Z","4567"\n',
        # a header row, no quotes, a bare plus kept, epoch seconds
        "Appid,Bucket,Key,Size,LastModifiedDate,ETag\n"
        "1250000000,album,a%20b+c.jpg,10,1704067200,0123\n"
        "1250000000,album,d/e.png,20,1704153600,4567\n",
    ],
)
async def test_the_reader_tolerates_the_unconfirmed_details(tmp_path: Path, text: str) -> None:
    data = gzip.compress(text.encode())
    (tmp_path / "f1.csv.gz").write_bytes(data)
    manifest = _write_manifest(tmp_path, _manifest_doc([("x/f1.csv.gz", data)]))
    files = LocalFiles(manifest)
    body, checksum = await files.manifest()
    source = InventorySource(parse_manifest(body, checksum, "m"), files, tmp_path / "sp", "")
    refs = await _all(source)
    assert [(r.key, r.size, r.etag) for r in refs] == [
        ("a b+c.jpg", 10, "0123"),
        ("d/e.png", 20, "4567"),
    ]
    assert refs[0].last_modified.isoformat().startswith("2024-01-01T00:00:00")
    assert source.files_opened == [0]


async def test_pages_are_marked_by_file_and_row_and_resume_there(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(2500, 3), seed=3)
    made = generate(state, folder=tmp_path, rows_per_file=1000)
    assert made["files"] == 3
    files = LocalFiles(Path(made["path"]))
    body, checksum = await files.manifest()
    manifest = parse_manifest(body, checksum, "m")
    source = InventorySource(manifest, files, tmp_path / "sp", "", page_size=300)
    first = await source.page("")
    assert first.next_marker == "0:300"
    pages = [first]
    while pages[-1].next_marker is not None:
        pages.append(await source.page(pages[-1].next_marker))
    markers = [p.next_marker for p in pages]
    assert markers[:5] == ["0:300", "0:600", "0:900", "1:0", "1:300"]
    assert [r.key for p in pages for r in p.objects] == state.bucket.keys()
    again = InventorySource(manifest, files, tmp_path / "sp", "", page_size=300)
    resumed = await again.page("1:600")  # a resumed scan: no earlier file is opened
    assert resumed.objects == pages[6].objects
    assert again.files_opened == [1]


@pytest.mark.parametrize("how", ["cos", "local"])
def test_an_inventory_scan_audits_what_a_listing_scan_would(tmp_path: Path, how: str) -> None:
    state = EmulatorState(bucket=synthetic(3000, 5), seed=5)

    async def run() -> tuple[dict[str, str], dict[str, str], dict[str, object]]:
        async with running(state) as url:
            made = generate(state, rows_per_file=700)
            where = made["manifest"] if how == "cos" else made["path"]
            listed = config(url, tmp_path / "a", batch_size=50)
            (tmp_path / "a").mkdir()
            (tmp_path / "b").mkdir()
            read = replace(listed, store=replace(listed.store, path=str(tmp_path / "b/s.db")))
            one = await run_scan(listed, anyio.Event(), Progress())
            progress = Progress()
            two = await run_scan(read, anyio.Event(), progress, inventory=where)
            assert (one.outcome, two.outcome) == ("done", "done")
            assert progress.total == 3000
            out = []
            for cfg in (listed, read):
                async with await Store.open(cfg.store.path) as store:
                    rows = await store._all("SELECT key, state FROM scan_objects", ())
                out.append(dict(rows))
            return out[0], out[1], state.stats.as_json(False)

    by_listing, by_inventory, s = anyio.run(run)
    assert by_inventory == by_listing
    if how == "cos":  # every data file read once, and the manifest
        reads = s["reads"]
        assert isinstance(reads, dict)
        assert sorted(reads.values()) == [1] * len(reads)
        assert len(reads) == 5 + 1 + 1


def test_hostile_manifests_are_one_line_each(tmp_path: Path) -> None:
    good = gzip.compress(b'"1250000000","album-1250000000","a.jpg","10","","e"\n')
    cases: dict[str, tuple[dict[str, object], str | None, bytes]] = {
        "does not match manifest.checksum": (_manifest_doc([("f.csv.gz", good)]), "0" * 32, good),
        "has MD5": (_manifest_doc([("f.csv.gz", good)]), None, good + b"x"),
        "truncated gzip": (_manifest_doc([("f.csv.gz", good[:-12])]), None, good[:-12]),
        "no Key column": (_manifest_doc([("f.csv.gz", good)], "Appid, Bucket, Size"), None, good),
        "fileFormat 'ORC'": (
            {**_manifest_doc([("f.csv.gz", good)]), "fileFormat": "ORC"},
            None,
            good,
        ),
        "missing": (_manifest_doc([("f.csv.gz", good), ("g.csv.gz", good)]), None, good),
        "not of the configured bucket": (
            {**_manifest_doc([("f.csv.gz", good)]), "sourceBucket": "other"},
            None,
            good,
        ),
    }
    with emulator_process("--objects", "10") as url:
        for n, (expected, (doc, checksum, data)) in enumerate(cases.items()):
            folder = tmp_path / f"case{n}"
            folder.mkdir()
            (folder / "f.csv.gz").write_bytes(data)
            manifest = _write_manifest(folder, doc, checksum)
            cfg = write_config(folder / "c.toml", url, folder / "s.db")
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "scanner",
                    "scan",
                    "--config",
                    str(cfg),
                    "--inventory",
                    str(manifest),
                ],
                env=ENV,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            assert done.returncode == 2, (expected, done.stderr)
            lines = [x for x in done.stderr.splitlines() if x.startswith("cos-scanner:")]
            assert len(lines) == 1, done.stderr
            assert expected in lines[0], (expected, done.stderr)
            assert lines[0].startswith("cos-scanner: inventory error: ")
            assert "Traceback" not in done.stderr


def test_missing_checksum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"manifest\.checksum is missing"):
        parse_manifest(b"{}", None, "m")


def _post(url: str, path: str, body: dict[str, object]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        out: dict[str, Any] = json.load(r)
    return out


@pytest.mark.slow
def test_sigkill_five_times_reads_no_finished_file_again(tmp_path: Path) -> None:
    """20,000 objects in 10 data files, the scan killed -9 five times while auditing: every
    object ends audited, failed or skipped as a listing scan leaves it; each data file is
    downloaded once (the file being read at a kill waits in the spool, checked, for the
    resume); what was billed twice is at most what was in flight at the kills."""
    store, log = tmp_path / "scan.db", tmp_path / "scan.log"
    with emulator_process("--objects", "20000", "--seed", "8", "--latency", "0.01") as url:
        made = _post(url, "/_emulator/inventory", {"rows_per_file": 2000})
        assert made["files"] == 10
        cfg = write_config(tmp_path / "c.toml", url, store, concurrency=2, batch_size=50)
        for n in (1500, 5000, 8000, 11000, 14000):
            proc = scan(cfg, log, "--inventory", made["manifest"])
            wait_until(lambda n=n: stats(url)["sent_images"] >= n, proc, timeout=120)  # type: ignore[misc]
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        proc = scan(cfg, log, "--inventory", made["manifest"])
        assert proc.wait(timeout=300) in (0, 3), log.read_text()[-2000:]
        s = stats(url, detail=True)
    reads = {k: n for k, n in s["reads"].items() if k.endswith(".csv.gz")}
    assert len(reads) == 10
    assert sum(n - 1 for n in reads.values()) <= 5, reads  # only a download cut by a kill
    assert sum(n - 1 for n in s["audits"].values()) <= 5 * 2 * 50
    state = EmulatorState(bucket=synthetic(20000, 8), seed=8)
    rows = dict(db_rows(store, "SELECT key, state FROM scan_objects"))
    assert sorted(rows) == state.bucket.keys()
    assert "pending" not in set(rows.values())
    (scan_row,) = db_rows(store, "SELECT state, listed, marker FROM scans")
    assert scan_row[:2] == ("done", 20000)


def test_the_nightly_from_a_new_inventory_audits_only_what_changed(tmp_path: Path) -> None:
    state = EmulatorState(bucket=synthetic(3000, 6), seed=6)

    async def run() -> tuple[list[str], int, int, str, str]:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50)
            first = generate(state, rows_per_file=1000, day="20261129")["manifest"]
            assert (await run_scan(cfg, anyio.Event(), Progress(), inventory=first)).outcome == (
                "done"
            )
            again = await run_scan(cfg, anyio.Event(), Progress(), inventory=first)
            before = sum(state.stats.audits.values())
            changed = churn(state, change=0.01, add=0.0, delete=0.0, seed=9)["changed"]
            state.stats.audits.clear()
            second = generate(state, rows_per_file=1000, day="20261130")["manifest"]
            nightly = await run_scan(
                cfg, anyio.Event(), Progress(), mode="incremental", inventory=second
            )
            async with await Store.open(cfg.store.path) as store:
                skipped = await store.skip_reasons(nightly.status.id)
            return changed, before, skipped.get("unchanged", 0), again.outcome, nightly.outcome

    changed, before, unchanged, again, nightly = anyio.run(run)
    assert before > 0
    assert again == "nothing"  # the same manifest again: its scan is done
    assert nightly == "done"
    audited = set(state.stats.audits)
    assert audited <= set(changed)  # only changed keys were sent (non-images are skipped)
    assert len(audited) > 0
    assert unchanged >= 2500  # the rest: skipped by the filter (not images, too large) or changed


def test_a_dry_run_from_an_inventory_counts_what_the_scan_then_sends(tmp_path: Path) -> None:
    """`scan --dry-run --inventory`: the images a new scan, a resumed one and the next night's
    rescan then send, to the image; it writes nothing (no store, no spool beside it)."""
    state = EmulatorState(bucket=synthetic(3000, 7), seed=7)

    def sent() -> int:
        n = sum(state.stats.audits.values())
        state.stats.audits.clear()
        return n

    async def run() -> list[tuple[int, int]]:
        async with running(state) as url:
            cfg = config(url, tmp_path, batch_size=50)
            first = generate(state, rows_per_file=700, day="20261129")["manifest"]
            pairs = []
            est = await run_dry(cfg, Progress(), anyio.Event(), inventory=first)
            assert state.stats.requests["list"] == 0  # read from the Inventory: no listing
            assert est.objects == 3000
            assert not await anyio.Path(cfg.store.path).exists()
            assert not await anyio.Path(spool_dir(cfg.store.path)).exists()
            paused = await run_scan(cfg, anyio.Event(), Progress(), max_images=700, inventory=first)
            assert paused.outcome == "paused"
            pairs.append((est.images, sent()))
            with pytest.raises(ConfigError, match="reads an Inventory"):  # as the scan refuses
                await run_dry(cfg, Progress(), anyio.Event())
            est = await run_dry(cfg, Progress(), anyio.Event(), inventory=first)
            done = await run_scan(cfg, anyio.Event(), Progress(), inventory=first)
            assert done.outcome == "done"
            pairs.append((est.images, sent()))
            churn(state, change=0.02, add=0.01, delete=0.0, seed=3)
            second = generate(state, rows_per_file=700, day="20261130")["manifest"]
            est = await run_dry(
                cfg, Progress(), anyio.Event(), mode="incremental", inventory=second
            )
            assert est.mode == "incremental"
            nightly = await run_scan(
                cfg, anyio.Event(), Progress(), mode="incremental", inventory=second
            )
            assert nightly.outcome == "done"
            pairs.append((est.images, sent()))
            return pairs

    (whole, first_run), (rest, resumed), (changed, nightly) = anyio.run(run)
    assert whole == first_run + resumed  # the first dry run: all of it (the scan paused at 700)
    assert first_run >= 700
    assert rest == resumed > 0
    assert changed == nightly > 0
