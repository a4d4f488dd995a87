"""Listing against the emulator over HTTP: paging, awkward keys, prefixes, markers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.cos.client import HttpClient
from scanner.cos.listing import Lister, parse_page
from scanner.cos.xml import XmlError
from scanner.emulator import Bucket, EmulatorState, running
from scanner.emulator.bucket import StoredObject, etag_of
from tests.conftest import CREDS, FAST_RETRY, Emulator, FakeClock

AWKWARD = [
    "a b.jpg",
    "a+b.jpg",
    "100%.jpg",
    "%2F.jpg",
    "相册/夏天 1.jpg",
    "📷/x.png",
    "new\nline.jpg",
    "tab\there.gif",
    "q?x=1&y=2#h.jpg",
    "dir/",
    "~tilde.webp",
    "dir/sub/.hidden.png",
    "a/b/c/d/e/f.jpg",
    "plus+space +.jpg",
    "é/ü/ß.jpeg",
]


def fill(bucket: Bucket, keys: list[str]) -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    for i, key in enumerate(keys):
        bucket.put(key, StoredObject(etag_of(key), i, when, "STANDARD"))


def many_keys(n: int) -> list[str]:
    keys = [f"p{i % 3}/{AWKWARD[i % len(AWKWARD)]}.{i:05d}" for i in range(n)]
    return keys + AWKWARD


async def test_lists_2500_awkward_keys_across_pages(
    emulator: Emulator, lister: Lister, state: EmulatorState
) -> None:
    keys = many_keys(2600)
    fill(state.bucket, keys)
    listed: list[str] = []
    pages = 0
    async for page in lister.iter_pages():
        pages += 1
        listed.extend(o.key for o in page.objects)
    assert listed == sorted(keys)
    assert pages == 3
    assert state.stats.as_json(False)["pages_listed_twice"] == 0


async def test_lists_under_a_prefix(
    emulator: Emulator, http: HttpClient, clock: FakeClock, state: EmulatorState
) -> None:
    keys = many_keys(2600)
    fill(state.bucket, keys)
    lister = Lister(http, emulator.cos(prefix="p1/", page_size=400), retry=FAST_RETRY, clock=clock)
    listed = [o.key async for page in lister.iter_pages() for o in page.objects]
    assert listed == sorted(k for k in keys if k.startswith("p1/"))
    assert len(listed) > 800


async def test_objects_are_typed(emulator: Emulator, lister: Lister, state: EmulatorState) -> None:
    fill(state.bucket, ["x/a b.jpg"])
    page = await lister.page()
    (obj,) = page.objects
    assert obj.key == "x/a b.jpg"
    assert obj.etag == etag_of("x/a b.jpg")
    assert obj.size == 0
    assert obj.last_modified == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert obj.storage_class == "STANDARD"
    assert page.next_marker is None


async def test_resumes_from_a_marker(
    emulator: Emulator, lister: Lister, state: EmulatorState
) -> None:
    fill(state.bucket, [f"k{i:04d}" for i in range(50)])
    listed = [o.key async for page in lister.iter_pages("k0041") for o in page.objects]
    assert listed == [f"k{i:04d}" for i in range(42, 50)]


def test_next_marker_falls_back_to_last_key() -> None:
    body = (
        b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        b"<Contents><Key>a%20b</Key><Size>1</Size></Contents>"
        b"<Contents><Key>c%2Bd</Key><Size>2</Size></Contents></ListBucketResult>"
    )
    page = parse_page(body, "")
    assert [o.key for o in page.objects] == ["a b", "c+d"]
    assert page.next_marker == "c+d"


def test_keys_are_not_decoded_without_encoding_type() -> None:
    body = b"<ListBucketResult><Contents><Key>100%25</Key></Contents></ListBucketResult>"
    assert parse_page(body, "").objects[0].key == "100%25"


def test_truncated_page_without_progress_is_refused() -> None:
    body = b"<ListBucketResult><IsTruncated>true</IsTruncated><NextMarker>a</NextMarker></ListBucketResult>"  # noqa: E501
    with pytest.raises(XmlError, match="no way forward"):
        parse_page(body, "b")


def test_wrong_root_is_refused() -> None:
    with pytest.raises(XmlError, match="ListBucketResult"):
        parse_page(b"<Response/>", "")


key_sets = st.lists(
    st.text(
        st.characters(
            categories=("L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co"), exclude_characters="\x00"
        ),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=25,
    unique=True,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=key_sets, page_size=st.integers(1, 5))
async def test_any_keys_any_page_size_listed_once_in_order(keys: list[str], page_size: int) -> None:
    state = EmulatorState(bucket=Bucket())
    fill(state.bucket, keys)
    async with running(state) as url, HttpClient(CREDS) as http:
        emu = Emulator(state, url)
        lister = Lister(http, emu.cos(page_size=page_size), retry=FAST_RETRY, clock=FakeClock())
        listed = [o.key async for page in lister.iter_pages() for o in page.objects]
    assert listed == sorted(keys)
