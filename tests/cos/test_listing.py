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
from scanner.scan.ranges import midpoint
from tests.helpers import CREDS, FAST_RETRY, Emulator, FakeClock, make_lister

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
    lister = make_lister(
        http, emulator.cos(prefix="p1/", page_size=400), retry=FAST_RETRY, clock=clock
    )
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
        lister = make_lister(
            http, emu.cos(page_size=page_size), retry=FAST_RETRY, clock=FakeClock()
        )
        listed = [o.key async for page in lister.iter_pages() for o in page.objects]
    assert listed == sorted(keys)


def _between(keys: list[str], lo: str, hi: str | None) -> int:
    return sum(1 for k in keys if lo < k and (hi is None or k <= hi))


async def test_split_point_cuts_a_crowded_range_where_its_keys_are(
    emulator: Emulator, lister: Lister, state: EmulatorState
) -> None:
    # most keys under one prefix with more children than a delimiter listing shows at once
    keys = [
        f"albums/u{u:05d}/{y}/p{j}.jpg" for u in range(3000) for y in (2023, 2024) for j in (1, 2)
    ]
    keys += [f"docs/{i}.pdf" for i in range(5)] + ["zz/x.jpg", "zz/y.jpg"]
    fill(state.bucket, keys)
    keys.sort()
    cases: list[tuple[str, str | None]] = [
        ("albums/u00100/2023/p2.jpg", None),  # the last range of a split: no upper bound
        ("", "albums/u00300/"),  # the first range of a split
        ("albums/u02990/2024/p1.jpg", "zz/"),  # near the end of the crowded prefix
        ("albums/u01500/2023/p1.jpg", "albums/u01500/2024/p2.jpg"),  # inside one folder
    ]
    for after, upto in cases:
        mid = await lister.split_point(after, upto)
        assert mid is not None, (after, upto)
        assert after < mid, (after, mid)
        assert upto is None or mid < upto, (mid, upto)
        left, right = _between(keys, after, mid), _between(keys, mid, upto)
        assert left >= 1, (after, upto, mid)
        assert right >= 1, (after, upto, mid)
        assert min(left, right) >= 0.1 * (left + right) or left + right < 20, (mid, left, right)
    # the key space's midpoint would have handed the idle lister an empty stretch instead
    after, upto = cases[0]
    blind = midpoint(after, upto)
    assert blind is not None
    assert _between(keys, after, blind) > 0.99 * _between(keys, after, upto)
    assert state.stats.as_json(False)["folder_views"] > 0  # probes are not pages of the walk
    assert state.stats.as_json(False)["pages_listed"] == 0


async def test_split_point_leaves_a_range_with_one_key_whole(
    emulator: Emulator, lister: Lister, state: EmulatorState
) -> None:
    keys = sorted(f"a/b/{i}.jpg" for i in range(10))
    fill(state.bucket, keys)
    assert await lister.split_point(keys[-2], None) is None  # one key left: nothing to share
    assert await lister.split_point(keys[0], keys[2]) is None  # only keys[1] in (after, upto)
    assert await lister.split_point(keys[0], keys[3]) == keys[2]


nested_keys = st.lists(
    st.text(st.sampled_from("ab/é+"), min_size=1, max_size=7), min_size=1, max_size=30, unique=True
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=nested_keys,
    prefix=st.sampled_from(["", "a", "a/", "b/"]),
    marker=st.text(st.sampled_from("ab/é"), max_size=4),
    page_size=st.integers(1, 4),
)
async def test_folder_views_page_like_a_plain_rollup(
    keys: list[str], prefix: str, marker: str, page_size: int
) -> None:
    """A `/` delimiter listing, paged from any marker under any prefix, shows each child once
    and in order: what rolling the keys up by hand gives (the emulator jumps over a folder's
    keys instead of walking them)."""
    state = EmulatorState(bucket=Bucket())
    fill(state.bucket, keys)
    expected: list[str] = []
    for key in sorted(keys):
        if not key.startswith(prefix) or key <= marker:
            continue
        cut = key.find("/", len(prefix))
        item = key[: cut + 1] if cut >= 0 else key
        if item > marker and item not in expected:
            expected.append(item)
    async with running(state) as url, HttpClient(CREDS) as http:
        emu = Emulator(state, url)
        lister = make_lister(
            http, emu.cos(page_size=page_size), retry=FAST_RETRY, clock=FakeClock()
        )
        shown: list[str] = []
        at: str | None = marker
        while at is not None:
            page = await lister.page(at, prefix=prefix, delimiter="/")
            shown.extend(sorted([o.key for o in page.objects] + list(page.common_prefixes)))
            at = page.next_marker
    assert shown == expected
