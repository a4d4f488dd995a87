"""The emulator's rules for videos, voice and documents (reference 12): which extensions are
which class, how long a file "lasts" (from its size, deterministically), and what a job finds.

| class    | extensions (reference 12.6)               | limit  | length from size       |
|----------|-------------------------------------------|--------|------------------------|
| video    | flv mkv mp4 rmvb avi wmv 3gp mov m3u8 m4v | 5 GB   | 2 Mbit/s: size / 250 kB|
| audio    | mp3 wav aac flac amr m4a wma ogg ape      | 600 MB | 128 kbit/s: size / 16 kB|
| document | office formats, csv, pdf                  | 200 MB | a page per 200 kB      |

A file is judged by the image rules' hit on its key (`rules._hit`: "nsfw", "ad_", the key's
hash): a hit makes every 10th frame (from the 3rd), the first voice section and the first page
hits of that scene; otherwise the file is Normal. Size 0 or "corrupt" in the key: the job fails
(-1200 media decode failed); over the limit: -1201 (file too large).
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.emulator.bucket import StoredObject
from scanner.emulator.rules import Hit, _hit, bucket_of
from scanner.media import MAX_BYTES, MEDIA_EXTENSIONS, class_of

#: Each class's formats and largest size (the scanner's tables, from reference 12.6).
KINDS: dict[str, tuple[frozenset[str], int]] = {
    kind: (MEDIA_EXTENSIONS[kind], limit) for kind, limit in MAX_BYTES.items()
}
SECTION_MS = 15_000  # a voice section


def kind_of(key: str) -> str | None:
    """video, audio or document by the key's extension (any case), else None."""
    kind = class_of(key)
    return kind if kind in KINDS else None


def seconds_of(kind: str, size: int) -> int:
    """How long a video or voice note of `size` bytes lasts (at least a second)."""
    return max(1, size // (250_000 if kind == "video" else 16_000))


def pages_of(size: int) -> int:
    return min(5000, 1 + size // 200_000)


@dataclass(frozen=True, slots=True)
class MediaVerdict:
    kind: str
    code: str = ""
    message: str = ""
    hit: Hit | None = None
    seconds: int = 0
    pages: int = 0


def media_verdict(
    kind: str, key: str, obj: StoredObject | None, scenes: tuple[str, ...]
) -> MediaVerdict:
    if obj is None:
        return MediaVerdict(kind, "-1404", "file not found")
    seed = obj.content or key
    if obj.size == 0 or "corrupt" in seed.lower():
        return MediaVerdict(kind, "-1200", "media decode failed")
    if obj.size > KINDS[kind][1]:
        return MediaVerdict(kind, "-1201", "file too large")
    hit = _hit(seed, bucket_of(seed), scenes)
    if kind == "document":
        return MediaVerdict(kind, hit=hit, pages=pages_of(obj.size))
    return MediaVerdict(kind, hit=hit, seconds=seconds_of(kind, obj.size))
