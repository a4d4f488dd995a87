"""Plain data that crosses module boundaries: listed objects, pages, audit inputs and verdicts.

Leaf module: imports nothing from `scanner`. Everything here is immutable.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol

#: The scene blocks a batch image audit can return, by their XML element name.
SCENES = (
    "PornInfo",
    "TerrorismInfo",
    "PoliticsInfo",
    "AdsInfo",
    "IllegalInfo",
    "AbuseInfo",
    "TeenagerInfo",
)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object as ListObjects reports it (key already URL-decoded, ETag unquoted)."""

    key: str
    etag: str
    size: int
    last_modified: datetime
    storage_class: str = "STANDARD"


@dataclass(frozen=True, slots=True)
class Page:
    """One ListObjects answer: its objects and where the next page starts (None = done)."""

    marker: str
    objects: tuple[ObjectRef, ...]
    common_prefixes: tuple[str, ...] = ()
    next_marker: str | None = None


@dataclass(frozen=True, slots=True)
class KeyRange:
    """A part of a scan's listing: the keys k with after < k <= upto (None: to the end),
    listed on from `marker`."""

    idx: int
    after: str
    upto: str | None
    marker: str
    done: bool = False


class Result(IntEnum):
    """The audit verdict of an image."""

    NORMAL = 0
    SENSITIVE = 1
    SUSPICIOUS = 2


@dataclass(frozen=True, slots=True)
class AuditItem:
    """One image to audit: the key and a DataId unique within its request (<= 512 bytes)."""

    key: str
    data_id: str
    user: str = ""  # the uploader, sent as UserInfo.TokenId ("" = not sent)
    url: str = ""  # audit this URL (a URL-list target) instead of the object `key`


@dataclass(frozen=True, slots=True)
class OcrResult:
    text: str = ""
    keywords: tuple[str, ...] = ()
    sub_label: str = ""


@dataclass(frozen=True, slots=True)
class LibResult:
    image_id: str = ""
    score: int = 0
    lib_type: str = ""
    lib_name: str = ""
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SceneInfo:
    """One scene block (PornInfo, AdsInfo, ...) of a verdict."""

    code: int = 0
    msg: str = ""
    hit_flag: int = 0
    score: int = 0
    label: str = ""
    category: str = ""
    sub_label: str = ""
    ocr_results: tuple[OcrResult, ...] = ()
    lib_results: tuple[LibResult, ...] = ()


@dataclass(frozen=True, slots=True)
class ListResult:
    """A custom allow/block list hit (ListInfo/ListResults)."""

    list_type: int = 0
    list_name: str = ""
    entity: str = ""


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    """The outcome for one audited image: a verdict, or a per-image failure (`code` set).

    `retryable` says whether a later attempt may succeed; `raw` is the JobsDetail element's XML as
    received, kept for the store and for reports.
    """

    key: str
    data_id: str
    job_id: str = ""
    state: str = ""
    result: Result | None = None
    label: str = ""
    score: int = 0
    category: str = ""
    sub_label: str = ""
    text: str = ""
    compression_result: int | None = None
    forbid_state: int | None = None  # auto-freeze: as reported (0 not frozen, 1 frozen, ...)
    scenes: Mapping[str, SceneInfo] = field(default_factory=dict)
    list_results: tuple[ListResult, ...] = ()
    code: str = ""
    message: str = ""
    retryable: bool = False
    raw: str = ""
    #: `raw` as the store keeps it, when a worker process packed it (so the scan's process,
    #: which writes it, need not: deflating was 15 % of its CPU with --workers)
    raw_packed: bytes | None = None
    maybe_double: bool = False  # sent again after a lost answer: possibly billed twice
    shared_from: str | None = None  # a copy's verdict: the key whose audit it shares (unbilled)

    @property
    def failed(self) -> bool:
        return bool(self.code)


def _pickled_by_position(cls: type[Any]) -> None:
    """Pickle instances of a frozen slotted dataclass as its constructor and field values:
    the default (__getstate__ / __setstate__ through `dataclasses.fields`) was the largest
    cost of receiving a worker's verdicts (--workers)."""
    get = operator.attrgetter(*(f.name for f in fields(cls)))

    def __reduce__(self: Any) -> tuple[type[Any], tuple[Any, ...]]:
        return cls, get(self)

    setattr(cls, "__reduce__", __reduce__)  # noqa: B010 (a method set on the class)


for _cls in (AuditItem, OcrResult, LibResult, SceneInfo, ListResult, ImageVerdict):
    _pickled_by_position(_cls)


class _Located(Protocol):
    @property
    def bucket(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def prefix(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Target:
    """What a scan covers: one bucket (in one region) under one prefix."""

    bucket: str
    region: str
    prefix: str = ""
    urls: str = ""  # a URL list (its absolute path) instead of a bucket
    shard: tuple[int, int] | None = None  # (i, n): only the keys whose hash is i mod n

    @classmethod
    def of(cls, cos: _Located) -> Target:
        """The bucket target of a `[cos]` section (bucket, region, prefix)."""
        return cls(cos.bucket, cos.region, cos.prefix)

    @property
    def id(self) -> str:
        if self.urls:
            return f"urls://{self.urls}"
        base = f"cos://{self.bucket}.{self.region}/{self.prefix}"
        if self.shard is not None:
            return f"shard-{self.shard[0]}-of-{self.shard[1]}+{base}"
        return base

    @property
    def doing(self) -> str:
        """What the holder of its lease does (the busy line)."""
        return "scanned"

    @property
    def scope(self) -> str:
        """The bucket's id: verdicts belong to it, whatever target produced them (a URL
        list's verdicts belong to the list)."""
        if self.urls:
            return self.id
        return f"cos://{self.bucket}.{self.region}/"


def split_target(target_id: str) -> tuple[str, str]:
    """(scope, prefix) of a target id: the bucket's id, and the prefix under it."""
    if target_id.startswith("urls://"):
        return target_id, ""
    if target_id.startswith("shard-"):  # a shard's keys belong to its bucket like any other
        target_id = target_id.partition("+")[2]
    head, _, prefix = target_id.removeprefix("cos://").partition("/")
    return f"cos://{head}/", prefix


def unsharded(target_id: str) -> str:
    """The id of the whole target a shard's target id is part of (itself when not a shard)."""
    return target_id.partition("+")[2] if target_id.startswith("shard-") else target_id


def shard_of(key: str, count: int) -> int:
    """Which of `count` shards `key` belongs to: a stable hash of its UTF-8 bytes, so shards
    are balanced whatever the prefixes, and every process agrees."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def key_range(prefix: str) -> tuple[str, str]:
    """Bounds lo <= key < hi of the keys under `prefix` (UTF-8 order), so an index serves it."""
    return prefix, prefix + "\U0010ffff"


_MD5_ETAG = re.compile(r"[0-9a-f]{32}(-[1-9][0-9]{0,4})?")


@functools.lru_cache(maxsize=1 << 12)
def content_key(etag: str, size: int) -> str | None:
    """What identifies an object's bytes: its ETag (an MD5, or the multipart form `<md5>-N`,
    kept as it is) with its size. None when the ETag is not of those forms (e.g. SSE-C may
    change it): such an object shares no verdict. Cached: admission, the copies and the writer
    each ask for an object's."""
    tag = etag.strip('"').lower()
    if size <= 0 or not _MD5_ETAG.fullmatch(tag):
        return None
    return f"{tag}/{size}"


@dataclass(frozen=True, slots=True)
class ScanStatus:
    """A scan's row: where it stands and its counters."""

    id: int
    target: str
    mode: str
    policy: str
    state: str
    marker: str
    listing_done: bool
    listed: int
    audited: int
    flagged: int
    review: int
    failed: int
    skipped: int
    requests: int
    error: str | None
    started_at: float
    updated_at: float
    finished_at: float | None
    run_started_at: float | None
    run_audited: int
    deleted: int = 0
    maybe_double: int = 0  # images possibly billed twice (resent after a lost answer)
    frozen: int = 0  # images the service froze at audit time (ForbidState > 0)
    shared: int = 0  # audited without being billed: a copy's shared verdict, or another scan's
    reuse_since: float = 0.0  # verdicts made before this are not taken (a --force scan: its start)
    source_digest: str = ""  # a URL list's SHA-256 when the scan began ("" for a bucket)

    @property
    def pending(self) -> int:
        return self.listed - self.audited - self.failed - self.skipped


@dataclass(frozen=True, slots=True)
class Decision:
    """What the filter decided for a listed object: audit it, or skip it with a reason."""

    ref: ObjectRef
    skip: str = ""  # empty = audit
