"""What class of media a key names, by its extension (any case): the formats CI moderates
(reference 3.2 for images, 12.6 for the job types). Leaf module: imports nothing from
`scanner`.

Images are audited in batches; videos, voice and documents are CI moderation jobs. A scan
audits the classes `[scan] media` names (images only by default) and skips the others with a
reason naming their class (`video-not-enabled`, ...), so the dry run and the summary say how
many there are.
"""

from __future__ import annotations

import math

IMAGE = "image"
#: Every class a scan may audit (`[scan] media`).
MEDIA_CLASSES = ("image", "video", "audio", "document")
#: Formats batch image auditing reads (reference 3.2).
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "bmp", "gif", "webp", "heif", "heic"})
#: Formats of the job types (reference 12.6); a `3gp` is a video.
MEDIA_EXTENSIONS: dict[str, frozenset[str]] = {
    "video": frozenset("flv mkv mp4 rmvb avi wmv 3gp mov m3u8 m4v".split()),
    "audio": frozenset("mp3 wav aac flac amr m4a wma ogg ape".split()),
    "document": frozenset(
        "ppt pptx pot potx pps ppsx dps dpt pptm potm ppsm doc dot wps wpt docx dotx docm dotm "
        "xls xlt et ett xlsx xltx csv xlsb xlsm xltm ets pdf".split()
    ),
}


_MB = 1024 * 1024
#: The largest object of each job class CI takes (reference 12.6: video <= 5 GB, audio
#: < 600 MB, document <= 200 MB).
MAX_BYTES = {"video": 5 * 1024 * _MB, "audio": 600 * _MB - 1, "document": 200 * _MB}


def extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[1].lower() if "." in name else ""


def class_of(key: str) -> str | None:
    """image, video, audio or document; None for a format none of them reads."""
    ext = extension(key)
    if ext in IMAGE_EXTENSIONS:
        return IMAGE
    return next((c for c, exts in MEDIA_EXTENSIONS.items() if ext in exts), None)


def frame_count(seconds: float, mode: str, count: int, interval: float) -> int:
    """Frames a video job of `seconds` takes (reference 12.3): Interval one every `interval`
    seconds up to `count`, Average `count` spread over the video (one a second at most), Fps
    `interval` a second up to `count`. Never fewer for a longer video."""
    if mode == "Average":
        return max(1, min(count, math.ceil(seconds)))
    if mode == "Fps":
        return max(1, min(count, math.ceil(seconds * interval)))
    return max(1, min(count, math.ceil(seconds / max(interval, 0.001))))


#: Bytes a second of a video or a voice note takes, at the most and the least an estimate
#: allows (video 8 and 0.5 Mbit/s, sound 320 and 8 kbit/s), and bytes a document page takes
#: (2 MB and 20 kB): a listing gives sizes, not durations or pages.
BYTES_PER_SECOND = {"video": (1_000_000, 62_500), "audio": (40_000, 1_000)}
BYTES_PER_PAGE = (2_000_000, 20_000)
MAX_PAGES = 5000


def seconds_range(kind: str, size: int) -> tuple[int, int]:
    """The shortest and the longest a video or voice note of `size` bytes may last."""
    dense, sparse = BYTES_PER_SECOND[kind]
    return max(1, size // dense), max(1, math.ceil(size / sparse))


def pages_range(size: int) -> tuple[int, int]:
    """The fewest and the most pages a document of `size` bytes may have."""
    dense, sparse = BYTES_PER_PAGE
    return max(1, size // dense), min(MAX_PAGES, 1 + size // sparse)
