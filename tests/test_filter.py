"""The filter: every skip reason, and what passes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scanner.config import AuditSettings, ScanSettings
from scanner.models import ObjectRef
from scanner.scan.filter import ObjectFilter

MB = 1024 * 1024
WHEN = datetime(2024, 6, 1, tzinfo=UTC)


def reason(
    key: str,
    size: int = 1000,
    cls: str = "STANDARD",
    when: datetime = WHEN,
    scan: ScanSettings | None = None,
    large: bool = False,
) -> str:
    flt = ObjectFilter.from_settings(
        scan or ScanSettings(), AuditSettings(large_image_detect=large)
    )
    return flt.reason(ObjectRef(key, "e", size, when, cls))


@pytest.mark.parametrize(
    ("key", "size", "cls", "expected"),
    [
        ("a/b.jpg", 1000, "STANDARD", ""),
        ("a/B.JPEG", 1000, "STANDARD_IA", ""),
        ("x.heic", 1000, "INTELLIGENT_TIERING", ""),
        ("a/", 0, "STANDARD", "folder"),
        ("a/readme.txt", 10, "STANDARD", "not-image"),
        ("a/clip.MP4", 10, "STANDARD", "video-not-enabled"),
        ("a/voice.m4a", 10, "STANDARD", "audio-not-enabled"),
        ("a/slides.pdf", 10, "STANDARD", "document-not-enabled"),
        ("a/noext", 10, "STANDARD", "not-image"),
        ("a.dir/noext", 10, "STANDARD", "not-image"),
        ("a/empty.png", 0, "STANDARD", "empty"),
        ("a/cold.png", 10, "ARCHIVE", "archived"),
        ("a/cold.png", 10, "DEEP_ARCHIVE", "archived"),
        ("a/huge.png", 32 * MB, "STANDARD", "too-large"),
        ("a/big.png", 6 * MB, "STANDARD", "needs-large-image-detect"),
        ("bell\x07.png", 10, "STANDARD", "unencodable-key"),
    ],
)
def test_reasons(key: str, size: int, cls: str, expected: str) -> None:
    assert reason(key, size, cls) == expected


def test_large_image_detect_admits_5_to_32_mb() -> None:
    assert reason("big.png", 6 * MB, large=True) == ""
    assert reason("huge.png", 33 * MB, large=True) == "too-large"


def test_globs_windows_and_sizes() -> None:
    scan = ScanSettings(
        include=("albums/*",),
        exclude=("*/thumbs/*",),
        modified_after="2024-01-01",
        modified_before="2024-12-31T00:00:00Z",
        min_size=100,
        max_size=2000,
    )
    assert reason("albums/u1/a.jpg", scan=scan) == ""
    assert reason("other/a.jpg", scan=scan) == "not-included"
    assert reason("albums/thumbs/a.jpg", scan=scan) == "excluded"
    assert (
        reason("albums/a.jpg", when=datetime(2023, 1, 1, tzinfo=UTC), scan=scan)
        == "modified-window"
    )
    assert (
        reason("albums/a.jpg", when=datetime(2025, 1, 1, tzinfo=UTC), scan=scan)
        == "modified-window"
    )
    assert reason("albums/a.jpg", size=50, scan=scan) == "size-window"
    assert reason("albums/a.jpg", size=5000, scan=scan) == "size-window"


@pytest.mark.parametrize(
    ("key", "size", "cls", "expected"),
    [
        ("a/clip.MP4", 5 * 1024 * MB, "STANDARD", ""),  # video: up to 5 GB
        ("a/clip.mov", 5 * 1024 * MB + 1, "STANDARD", "too-large"),
        ("a/voice.m4a", 600 * MB - 1, "STANDARD", ""),  # audio: under 600 MB
        ("a/voice.mp3", 600 * MB, "STANDARD", "too-large"),
        ("a/slides.pdf", 200 * MB, "STANDARD", ""),  # documents: up to 200 MB
        ("a/slides.docx", 200 * MB + 1, "STANDARD", "too-large"),
        ("a/clip.mp4", 50 * MB, "ARCHIVE", "archived"),  # the image rules apply
        ("a/clip.mp4", 0, "STANDARD", "empty"),
        ("a/b.jpg", 1000, "STANDARD", "image-not-enabled"),  # only the classes named
        ("a/readme.txt", 10, "STANDARD", "not-image"),
    ],
)
def test_media_classes_opt_in_with_their_own_limits(
    key: str, size: int, cls: str, expected: str
) -> None:
    scan = ScanSettings(media=("video", "audio", "document"))
    assert reason(key, size, cls, scan=scan) == expected


def test_a_media_class_follows_the_same_key_and_date_filters() -> None:
    scan = ScanSettings(media=("image", "video"), exclude=("*/raw/*",), min_size=100)
    assert reason("u/raw/clip.mp4", 1000, scan=scan) == "excluded"
    assert reason("u/clip.mp4", 50, scan=scan) == "size-window"
    assert reason("u/clip.mp4", 1000, scan=scan) == ""
