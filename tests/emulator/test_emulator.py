"""The emulator's own behaviour: reference listing cases, folder mode, control, subprocess."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import anyio
import pytest

from scanner.config import CosSettings
from scanner.cos.client import HttpClient, ci_service, cos_service
from scanner.emulator import EmulatorState, from_folder, running, synthetic
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.emulator.rules import bucket_of, verdict_for
from scanner.errors import ServiceError
from scanner.models import AuditItem
from tests.helpers import (
    CREDS,
    FAST_RETRY,
    Emulator,
    FakeClock,
    make_auditor,
    make_lister,
    start_emulator,
)


def _fill(state: EmulatorState, keys: list[str]) -> None:
    for key in keys:
        state.bucket.put(key, StoredObject(etag_of(key), 20, datetime(2020, 12, 8, tzinfo=UTC)))


async def _get(http: HttpClient, emulator: Emulator, **params: str) -> bytes:
    reply = await http.send(cos_service(emulator.cos()), "GET", "/", params=params)
    return reply.body


REFERENCE_KEYS = [f"example-object-{i}.jpg" for i in (1, 2, 3)] + [
    f"example-folder-{i}/x.jpg" for i in (1, 2, 3, 4)
]


async def test_reference_case_5_and_6(emulator: Emulator, http: HttpClient) -> None:
    _fill(emulator.state, REFERENCE_KEYS)
    body = (
        await _get(http, emulator, **{"max-keys": "3", "marker": "example-folder-4/x.jpg"})
    ).decode()
    assert "<IsTruncated>false</IsTruncated>" in body
    assert "<NextMarker>" not in body
    assert "<Marker>example-folder-4/x.jpg</Marker>" in body
    first = (await _get(http, emulator, **{"max-keys": "3"})).decode()
    assert "<Prefix/><Marker/><MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>" in first
    assert "<NextMarker>example-folder-3/x.jpg</NextMarker>" in first
    assert "<ETag>&quot;" in first
    assert "<LastModified>2020-12-08T00:00:00.000Z</LastModified>" in first
    assert "<EncodingType>" not in first


async def test_reference_case_7_and_8_delimiter(emulator: Emulator, http: HttpClient) -> None:
    _fill(emulator.state, REFERENCE_KEYS)
    body = (await _get(http, emulator, delimiter="/", **{"max-keys": "3"})).decode()
    assert re.findall(r"<Prefix>([^<]+)</Prefix>", body) == [
        f"example-folder-{i}/" for i in (1, 2, 3)
    ]
    assert "<Delimiter>/</Delimiter>" in body
    assert "<NextMarker>example-folder-3/</NextMarker>" in body
    nxt = (await _get(http, emulator, delimiter="/", marker="example-folder-3/")).decode()
    assert re.findall(r"<Prefix>([^<]+)</Prefix>", nxt) == ["example-folder-4/"]
    assert re.findall(r"<Key>([^<]+)</Key>", nxt) == [f"example-object-{i}.jpg" for i in (1, 2, 3)]


async def test_url_encoding_keeps_slash(emulator: Emulator, http: HttpClient) -> None:
    _fill(emulator.state, ["照片/2020年/IMG 1.jpg"])
    body = (await _get(http, emulator, **{"encoding-type": "url"})).decode()
    assert "<EncodingType>url</EncodingType>" in body
    assert "<Key>%E7%85%A7%E7%89%87/2020%E5%B9%B4/IMG%201.jpg</Key>" in body


async def test_bad_list_params(emulator: Emulator, http: HttpClient) -> None:
    for params in ({"encoding-type": "xml"}, {"max-keys": "abc"}, {"delimiter": "//"}):
        with pytest.raises(ServiceError) as info:
            await _get(http, emulator, **params)
        assert info.value.status == 400
    _fill(emulator.state, [f"k{i:04d}" for i in range(1200)])
    assert (await _get(http, emulator, **{"max-keys": "5000"})).count(b"<Key>") == 1000


async def test_error_xml_has_every_field(emulator: Emulator) -> None:
    async with aiohttp.ClientSession() as session, session.get(emulator.url + "/") as resp:
        body = await resp.text()
        assert resp.status == 403
        assert resp.headers["x-cos-request-id"]
    for tag in ("Code", "Message", "Resource", "RequestId", "TraceId"):
        assert re.search(f"<{tag}>[^<]+</{tag}>", body), tag
    assert "<Code>AccessDenied</Code>" in body


async def test_ci_error_xml_has_no_resource(emulator: Emulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(emulator.url + "/image/auditing") as resp,
    ):
        body = await resp.text()
        assert resp.status == 401
    assert "<Resource>" not in body
    assert "<Code>MissingAuthorization</Code>" in body


async def test_async_job_and_query(emulator: Emulator, http: HttpClient) -> None:
    _fill(emulator.state, ["nsfw.jpg"])
    service = ci_service(emulator.cos(), make_auditor(http, emulator, FakeClock())._settings)
    body = (
        b"<Request><Input><Object>nsfw.jpg</Object><DataId>7</DataId></Input>"
        b"<Conf><Async>1</Async></Conf></Request>"
    )
    reply = await http.send(
        service, "POST", "/image/auditing", body=body, content_type="application/xml"
    )
    text = reply.body.decode()
    assert "<State>Submitted</State>" in text
    job_id = re.search(r"<JobId>(\w+)</JobId>", text)
    assert job_id is not None
    done = await http.send(service, "GET", f"/image/auditing/{job_id[1]}")
    assert b"<State>Success</State>" in done.body
    assert b"<Result>1</Result>" in done.body


async def test_control_endpoints_over_http(emulator: Emulator, http: HttpClient) -> None:
    emulator.state.bucket = synthetic(500, 3)
    async with aiohttp.ClientSession() as session:
        async with session.post(emulator.url + "/_emulator/faults", json={"latency": 0.01}) as r:
            assert (await r.json())["latency"] == 0.01
        async with session.post(emulator.url + "/_emulator/faults", json={"nope": 1}) as r:
            assert r.status == 400
        churn = {"churn": {"change": 0.1, "add": 0.02, "delete": 0.04, "seed": 5}}
        async with session.post(emulator.url + "/_emulator/objects", json=churn) as r:
            out = await r.json()
    assert (len(out["changed"]), len(out["added"]), len(out["deleted"])) == (50, 10, 20)
    assert out["objects"] == 490
    lister = make_lister(http, emulator.cos(), retry=FAST_RETRY, clock=FakeClock())
    keys = {o.key: o.etag async for p in lister.iter_pages() for o in p.objects}
    assert len(keys) == 490
    assert not set(out["deleted"]) & set(keys)
    assert all(keys[k] != etag_of(k) for k in out["changed"])
    async with aiohttp.ClientSession() as session:
        async with session.get(emulator.url + "/_emulator/stats?detail=1") as r:
            stats = await r.json()
    assert stats["requests"]["list"] == 1
    assert stats["list_markers"] == {"": 1}


def test_synthetic_album_is_deterministic_and_varied() -> None:
    a, b = synthetic(5000, 7), synthetic(5000, 7)
    assert a.keys() == b.keys()
    keys = a.keys()
    assert len(keys) == 5000
    assert any(k.endswith("/") for k in keys)
    assert any(" " in k for k in keys)
    assert any("%" in k and "+" in k for k in keys)
    assert any(not k.isascii() for k in keys)
    assert any(k.lower().endswith(".gif") for k in keys)
    assert any(k.endswith((".mp4", ".txt", ".json", ".pdf", ".mov")) for k in keys)
    sizes = [o.size for o in a.objects.values()]
    assert any(s > 32 * 2**20 for s in sizes)
    assert any(5 * 2**20 < s < 32 * 2**20 for s in sizes)
    assert sum(1 for k, o in a.objects.items() if o.size == 0 and not k.endswith("/")) > 0
    assert {o.storage_class for o in a.objects.values()} >= {"STANDARD", "ARCHIVE"}
    assert synthetic(5000, 8).keys() != keys


def test_rules_are_documented_numbers() -> None:
    obj = StoredObject("e", 1000, datetime.now(UTC))
    hits = [verdict_for(f"albums/{i}.jpg", obj) for i in range(4000)]
    porn = sum(v.label == "Porn" for v in hits)
    assert porn == sum(bucket_of(f"albums/{i}.jpg") < 20 for i in range(4000))
    assert 40 < porn < 120


async def test_folder_mode(tmp_path: Path, http: HttpClient) -> None:
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "cat.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 500)
    (tmp_path / "nsfw.png").write_bytes(b"\x89PNG" + b"y" * 100)
    (tmp_path / "notes.txt").write_text("hi")
    state = EmulatorState(bucket=from_folder(tmp_path))
    async with running(state) as url:
        emu = Emulator(state, url)
        lister = make_lister(http, emu.cos(), retry=FAST_RETRY, clock=FakeClock())
        keys = [o.key async for p in lister.iter_pages() for o in p.objects]
        assert keys == ["notes.txt", "nsfw.png", "sub dir/cat.jpg"]
        results = await make_auditor(http, emu, FakeClock()).moderate(
            [AuditItem(k, str(i)) for i, k in enumerate(keys)]
        )
    assert results[0].code == "-65013"
    assert results[1].label == "Porn"
    assert not results[2].failed


def test_cli_emulator_subprocess_serves_and_stops() -> None:
    proc, url = start_emulator("--objects", "1200")
    with proc:
        try:
            with urllib.request.urlopen(url + "/_emulator/stats", timeout=5) as resp:
                assert json.load(resp)["requests"] == {}
            settings = CosSettings(bucket="album-1250000000", endpoint=url)

            async def listing() -> int:
                async with HttpClient(CREDS) as http:
                    lister = make_lister(http, settings, retry=FAST_RETRY, clock=FakeClock())
                    return sum([len(p.objects) async for p in lister.iter_pages()])

            assert anyio.run(listing) == 1200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()
