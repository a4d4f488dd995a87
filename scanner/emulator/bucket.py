"""The emulated bucket: objects in key order, from a synthetic album or a real folder.

Keys are kept in one sorted list (UTF-8 byte order = code point order in Python) with a dict
of metadata, so a 1,000,000-object bucket lists at page speed. Mutations (`put`, `delete`)
re-sort lazily, so a test can change thousands of objects cheaply.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scanner.digests import file_digest

MB = 1024 * 1024
_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class StoredObject:
    etag: str
    size: int
    last_modified: datetime
    storage_class: str = "STANDARD"
    path: Path | None = None  # folder-backed mode: the file holding the content
    content: str | None = None  # a synthetic copy: the key of the picture it copies
    data: bytes | None = None  # an uploaded object (PUT Object): its bytes


def etag_of(key: str, version: int = 0) -> str:
    return hashlib.md5(f"{key}\0{version}".encode(), usedforsecurity=False).hexdigest()


class Bucket:
    """Objects by key, listable in order."""

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self._keys: list[str] = []
        self._sorted = True

    def __len__(self) -> int:
        return len(self.objects)

    def put(self, key: str, obj: StoredObject) -> None:
        if key not in self.objects:
            self._sorted = False
        self.objects[key] = obj

    def delete(self, key: str) -> bool:
        if self.objects.pop(key, None) is None:
            return False
        self._sorted = False
        return True

    def keys(self) -> list[str]:
        if not self._sorted:
            self._keys = sorted(self.objects)
            self._sorted = True
        return self._keys

    def after(self, marker: str, prefix: str) -> int:
        """Index of the first key > marker that could start with prefix."""
        keys = self.keys()
        start = bisect.bisect_right(keys, marker)
        return max(start, bisect.bisect_left(keys, prefix)) if prefix else start

    def touch(self, key: str, version: int) -> None:
        """Change an object's content (a new ETag, a new LastModified)."""
        obj = self.objects[key]
        obj.etag = etag_of(key, version)
        obj.content = None  # new bytes: no longer a copy
        obj.last_modified = obj.last_modified + timedelta(days=1)


_EXTENSIONS = [
    ("jpg", 50),
    ("jpeg", 8),
    ("png", 15),
    ("webp", 6),
    ("gif", 5),
    ("heic", 3),
    ("bmp", 2),
    ("JPG", 3),
]
_OTHER = ["mp4", "mov", "txt", "json", "pdf"]
_UNICODE_DIRS = ["相册", "照片/2023年", "фото", "صور", "📷 camera", "summer trip", "a+b", "100%"]


def _image_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.004:
        return rng.randint(33 * MB, 40 * MB)  # over the 32 MB hard limit
    if roll < 0.012:
        return rng.randint(6 * MB, 30 * MB)  # needs LargeImageDetect
    return rng.randint(30_000, 4 * MB)


def _storage_class(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.005:
        return "ARCHIVE"
    if roll < 0.008:
        return "DEEP_ARCHIVE"
    if roll < 0.05:
        return "STANDARD_IA"
    return "INTELLIGENT_TIERING" if roll < 0.07 else "STANDARD"


def _synthetic_key(i: int, rng: random.Random) -> tuple[str, bool]:
    """The i-th key of the album, and whether it is a plain image key."""
    user = rng.randint(1, max(1, i // 40 + 1))
    roll = rng.random()
    if roll < 0.03:
        return f"albums/u{user:05d}/docs/file_{i:07d}.{rng.choice(_OTHER)}", False
    if roll < 0.05:
        return f"albums/u{user:05d}/folder_{i:07d}/", False
    if roll < 0.12:
        d = rng.choice(_UNICODE_DIRS)
        ext = rng.choice(["jpg", "png", "gif"])
        return f"{d}/用户 {user}/夏天 {i:07d} (1)+#&%.{ext}", True
    ext = rng.choices([e for e, _ in _EXTENSIONS], [w for _, w in _EXTENSIONS])[0]
    year, month = 2019 + i % 6, 1 + i % 12
    return f"albums/u{user:05d}/{year}/{month:02d}/IMG_{i:07d}.{ext}", True


_MEDIA = (  # class, extensions, smallest and largest size, weight
    ("video", ("mp4", "mov"), 2 * MB, 60 * MB, 5),
    ("audio", ("m4a", "mp3"), 50_000, 3 * MB, 2),
    ("document", ("pdf", "docx"), 100_000, 5 * MB, 1),
)


def _as_media(key: str, rng: random.Random) -> tuple[str, int]:
    """An image key made a video, a voice note or a document (5:2:1), and its size."""
    _kind, exts, low, high, _w = rng.choices(_MEDIA, [m[4] for m in _MEDIA])[0]
    return f"{key.rsplit('.', 1)[0]}.{rng.choice(exts)}", rng.randint(low, high)


def synthetic(count: int, seed: int = 1, copies: float = 0.0, media: float = 0.0) -> Bucket:
    """A deterministic photo album of `count` objects.

    About 88% images (jpg/jpeg/png/webp/gif/heic/bmp, some upper-case), 3% other files, 2%
    folder markers, 7% keys with unicode, spaces, '+', '#', '&' and '%'; about 1% of images are
    zero bytes, 0.8% are 6-30 MB (need LargeImageDetect) and 0.4% are over 32 MB; a few are in
    archive storage classes. With `copies` (a share, 0..1), that share of the images are copies
    of an earlier image (forwarded photos, stickers, re-uploads): the same bytes, so the same
    ETag, size and verdict, under a key of their own with the original's extension. The album
    without copies is the same whatever `copies` is (they are drawn from a second generator).
    With `media` (a share), that share of the images are videos, voice notes and documents
    instead (5:2:1, `mp4`/`mov`, `m4a`/`mp3`, `pdf`/`docx`; from a third generator).
    """
    rng = random.Random(seed)
    copier = random.Random(seed * 7919 + 1)
    mediar = random.Random(seed * 104_729 + 3)
    originals: list[str] = []
    bucket = Bucket()
    for i in range(count):
        key, image = _synthetic_key(i, rng)
        if key.endswith("/"):
            size = 0
        elif image and rng.random() < 0.01:
            size = 0
        else:
            size = _image_size(rng) if image else rng.randint(100, 2 * MB)
        when = _BASE_TIME + timedelta(seconds=i * 37)
        if image and size and media and mediar.random() < media:
            key, size = _as_media(key, mediar)
            image = False
        obj = StoredObject(etag_of(key), size, when, _storage_class(rng))
        if image and size and copies and originals and copier.random() < copies:
            source_key = originals[copier.randrange(len(originals))]
            source = bucket.objects[source_key]
            key = f"{key.rsplit('.', 1)[0]}.{source_key.rsplit('.', 1)[-1]}"
            obj.etag, obj.size, obj.content = source.etag, source.size, source_key
        elif image and size:
            originals.append(key)
        bucket.put(key, obj)
    bucket.keys()
    return bucket


def from_folder(root: Path) -> Bucket:
    """Serve a real directory as the bucket: keys are POSIX paths relative to `root`."""
    bucket = Bucket()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            st = path.stat()
            key = path.relative_to(root).as_posix()
            etag = file_digest(path, "md5")  # as COS gives a simple upload: equal bytes, ETag
            when = datetime.fromtimestamp(st.st_mtime, tz=UTC)
            bucket.put(key, StoredObject(etag, st.st_size, when, "STANDARD", path))
    bucket.keys()
    return bucket
