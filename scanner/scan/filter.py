"""Which listed objects are audited, and why the others are skipped. Pure: no I/O.

Reasons (recorded with every skip): folder, empty, not-image (no format the service
moderates), video-not-enabled / audio-not-enabled / document-not-enabled (a class `[scan]
media` does not name; image-not-enabled likewise), archived, too-large (images: 32 MB; video
5 GB, audio 600 MB, document 200 MB), needs-large-image-detect, not-included, excluded,
modified-window, size-window, unencodable-key.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from scanner.audit.policy import LARGE_IMAGE_BYTES, xml_safe
from scanner.config import AuditSettings, ScanSettings
from scanner.media import IMAGE, MAX_BYTES, class_of
from scanner.models import Decision, ObjectRef

#: Storage classes the API cannot read without a restore.
ARCHIVE_CLASSES = frozenset({"ARCHIVE", "DEEP_ARCHIVE"})
SMALL_LIMIT = LARGE_IMAGE_BYTES  # bytes; larger needs LargeImageDetect
HARD_LIMIT = 32 * 1024 * 1024  # bytes; at or over it the API refuses


class Filter(Protocol):
    """Which listed objects are audited, and why the others are skipped."""

    def decide(self, ref: ObjectRef) -> Decision: ...


def _when(value: str) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.DOTALL)


@dataclass(frozen=True, slots=True)
class ObjectFilter:
    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None
    after: datetime | None
    before: datetime | None
    min_size: int
    max_size: int
    large_image_detect: bool
    media: frozenset[str] = frozenset({IMAGE})  # the classes audited ([scan] media)

    @classmethod
    def from_settings(cls, scan: ScanSettings, audit: AuditSettings) -> ObjectFilter:
        return cls(
            _globs(scan.include),
            _globs(scan.exclude),
            _when(scan.modified_after),
            _when(scan.modified_before),
            scan.min_size,
            scan.max_size,
            audit.large_image_detect,
            frozenset(scan.media),
        )

    def reason(self, ref: ObjectRef) -> str:  # noqa: C901 - one flat rule per reason
        """Why `ref` is skipped, or "" to audit it."""
        key = ref.key
        if key.endswith("/"):
            return "folder"
        kind = class_of(key)
        if kind is None:
            return "not-image"
        if kind not in self.media:
            return f"{kind}-not-enabled"
        if ref.size == 0:
            return "empty"
        if self.include is not None and not self.include.match(key):
            return "not-included"
        if self.exclude is not None and self.exclude.match(key):
            return "excluded"
        if (self.after and ref.last_modified < self.after) or (
            self.before and ref.last_modified >= self.before
        ):
            return "modified-window"
        if ref.size < self.min_size or (self.max_size and ref.size > self.max_size):
            return "size-window"
        if ref.storage_class.upper() in ARCHIVE_CLASSES:
            return "archived"
        if kind != IMAGE:
            return "too-large" if ref.size > MAX_BYTES[kind] else self._key(key)
        if ref.size >= HARD_LIMIT:
            return "too-large"
        if ref.size > SMALL_LIMIT and not self.large_image_detect:
            return "needs-large-image-detect"
        return self._key(key)

    @staticmethod
    def _key(key: str) -> str:
        return "" if xml_safe(key) else "unencodable-key"

    def decide(self, ref: ObjectRef) -> Decision:
        return Decision(ref, self.reason(ref))
