"""COS Inventory as a scan's input (`scan --inventory cos://bucket/.../manifest.json | PATH`).

A daily Inventory replaces listing for very large buckets (reference 4): `manifest.json` names
the source bucket, the CSV columns (`fileSchema`) and the gzip data files with their MD5s;
`manifest.checksum` is the MD5 of `manifest.json`. Both are checked before anything is read,
and each data file's MD5 before its rows are: a data file from COS is downloaded into a spool
beside the store, checked, then streamed (memory stays flat); a local one is checked in place.

The scan is the bucket's own scan (same target, same verdicts, same report): each page is up to
`page_size` rows of one data file, and the listing marker is `<file index>:<rows read>`, so a
killed scan resumes in the file it was reading (skipping the rows it had recorded) and never
reads a finished file again. The manifest's MD5 is the scan's source digest: a resume with the
same manifest goes on, a newer manifest supersedes an unfinished scan of an older one.

Rows are decoded as COS documents (`Key` URL-encoded; read with `unquote`, so `%20` and `%2B`
are a space and a plus and a bare `+` stays a plus) and tolerantly where the reference says the
details are unconfirmed: every field quoted or none, a header row or none, ETags with or
without quotes, `LastModifiedDate` as ISO 8601 or epoch seconds. Rows outside the configured
prefix, delete markers and non-current versions are not part of the scan.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

import anyio

from scanner.clock import Clock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.cos.objects import ObjectClient
from scanner.digests import file_digest
from scanner.errors import OnRetry
from scanner.limiter import AuditBudget
from scanner.models import ObjectRef, Page
from scanner.retry import RetryPolicy
from scanner.sources.manifest import DataFile, InventoryError, Manifest, parse_manifest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MANIFEST = 64 * 1024 * 1024
MAX_DATA_FILE = 1 << 40
KEEP = 6  # spool copies of finished data files kept: more than the pages read ahead can span


class Files(Protocol):
    """Where a manifest and its data files are read from: COS, or a local folder."""

    async def manifest(self) -> tuple[bytes, bytes | None]: ...

    async def data(self, data: DataFile, spool: Path) -> Path:
        """A local path holding the data file (downloaded into `spool` if need be), its MD5
        checked against the manifest's."""
        ...


async def _md5(path: Path) -> str:
    return await anyio.to_thread.run_sync(file_digest, path, "md5")


async def checked(path: Path, data: DataFile, where: str) -> Path:
    """`path`, once its MD5 is the manifest's."""
    md5 = await _md5(path)
    if md5 != data.md5:
        raise InventoryError(
            f"{where}: data file {data.key} has MD5 {md5}, the manifest says {data.md5}"
        )
    return path


class LocalFiles:
    """A manifest on disk; its data files where a copy of the destination bucket puts them
    (a folder above the manifest holding the files' keys) or beside the manifest."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise InventoryError(f"{str(path)!r}: no such file")
        self.path = path

    async def manifest(self) -> tuple[bytes, bytes | None]:
        checksum = self.path.with_name("manifest.checksum")
        return self.path.read_bytes(), checksum.read_bytes() if checksum.is_file() else None

    def locate(self, key: str) -> Path | None:
        for folder in self.path.resolve().parents:
            if (folder / key).is_file():
                return folder / key
        beside = self.path.with_name(key.rsplit("/", 1)[-1])
        return beside if beside.is_file() else None

    async def data(self, data: DataFile, spool: Path) -> Path:
        path = self.locate(data.key)
        if path is None:
            raise InventoryError(
                f"{self.path}: data file {data.key} is missing (looked above the "
                "manifest and beside it)"
            )
        return await checked(path, data, str(self.path))


def _clean(value: str) -> str:
    return value.strip().strip('"')


def _when(value: str) -> datetime:
    value = _clean(value)
    if not value:
        return _EPOCH
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class CosFiles:
    """A manifest in COS (`cos://<destination bucket>/<key of manifest.json>`): read through
    the object client, data files downloaded into the spool (a checked spool file is reused,
    so a resume does not fetch the file it was reading again)."""

    def __init__(self, objects: ObjectClient, url: str) -> None:
        bucket, _, key = url.removeprefix("cos://").partition("/")
        if not bucket or not key.endswith(".json"):
            raise InventoryError(f"{url!r}: expected cos://<bucket>/<path>/manifest.json")
        self.objects, self.bucket, self.key, self.url = objects, bucket, key, url

    async def manifest(self) -> tuple[bytes, bytes | None]:
        body = await self.objects.get(self.key, MAX_MANIFEST, self.bucket)
        if body is None:
            raise InventoryError(f"{self.url}: no such object")
        checksum_key = self.key.rsplit("/", 1)[0] + "/manifest.checksum"
        return body, await self.objects.get(checksum_key, 1024, self.bucket)

    async def data(self, data: DataFile, spool: Path) -> Path:
        path = spool / f"{data.md5}.csv.gz"
        if path.is_file() and await _md5(path) == data.md5:
            return path  # downloaded before a kill: whole (a cut download is not)
        if not await self.objects.download(data.key, path, MAX_DATA_FILE, self.bucket):
            path.unlink(missing_ok=True)
            raise InventoryError(f"{self.url}: data file {data.key} is missing")
        return await checked(path, data, self.url)


class _Columns:
    def __init__(self, schema: tuple[str, ...]) -> None:
        lower = [c.lower() for c in schema]
        self.names = lower

        def at(name: str) -> int | None:
            return lower.index(name) if name in lower else None

        self.key = lower.index("key")
        self.size, self.etag, self.modified = at("size"), at("etag"), at("lastmodifieddate")
        self.storage, self.latest, self.marker = (
            at("storageclass"),
            at("islatest"),
            at("isdeletemarker"),
        )

    def is_header(self, row: list[str]) -> bool:
        return [_clean(c).lower() for c in row[: len(self.names)]] == self.names

    def ref(self, row: list[str], prefix: str) -> ObjectRef | None:
        if len(row) <= self.key:
            return None
        key = unquote(_clean(row[self.key]))
        if not key.startswith(prefix):
            return None
        if self.marker is not None and _clean(row[self.marker]).lower() == "true":
            return None
        if self.latest is not None and _clean(row[self.latest]).lower() == "false":
            return None

        def cell(i: int | None) -> str:
            return _clean(row[i]) if i is not None and i < len(row) else ""

        size = cell(self.size)
        return ObjectRef(
            key,
            cell(self.etag).strip('"').lower(),
            int(size) if size.isdigit() else 0,
            _when(cell(self.modified)),
            cell(self.storage) or "STANDARD",
        )


class _Reader:
    """One open data file: CSV rows out of gzip, counted."""

    def __init__(self, index: int, path: Path, data: DataFile, spooled: bool) -> None:
        self.index, self.path, self.data, self.spooled = index, path, data, spooled
        self._gz = gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
        self.rows: Iterator[list[str]] = csv.reader(self._gz)
        self.read = 0

    def close(self) -> None:
        self._gz.close()


class InventorySource:
    """Pages of an Inventory: `page(marker)` as `Lister.page`, marker = `<file>:<rows>`."""

    def __init__(
        self, manifest: Manifest, files: Files, spool: Path, prefix: str, page_size: int = 1000
    ) -> None:
        self.manifest = manifest
        self.files = files
        self.spool = spool
        self.prefix = prefix
        self.page_size = page_size
        self.columns = _Columns(manifest.schema)
        self.files_opened: list[int] = []  # data files opened, in order (tests, bench)
        self._done_files: deque[Path] = deque()  # spool copies of files read to their end
        self._ended = False  # the last file was read to its end
        self._reader: _Reader | None = None

    @property
    def total(self) -> int | None:
        """The objects the scan will list (listObjectCount), when it covers the whole bucket."""
        return None if self.prefix else self.manifest.count

    def close(self, finished: bool = False) -> None:
        """Close the open data file. `finished`: it was read to its end; its spool copy is
        kept a while, since the pipeline records pages some way behind the reader (a kill
        then must not make the resume download it again), and dropped once KEEP newer files
        are done or the whole Inventory was read."""
        if self._reader is None:
            return
        self._reader.close()
        if finished and self._reader.spooled:
            self._done_files.append(self._reader.path)
        self._reader = None
        while len(self._done_files) > KEEP or (self._ended and self._done_files):
            self._done_files.popleft().unlink(missing_ok=True)

    async def _open(self, index: int, skip: int) -> _Reader:
        if self._reader is not None and (self._reader.index, self._reader.read) == (index, skip):
            return self._reader
        self.close()
        data = self.manifest.files[index]
        self.spool.mkdir(parents=True, exist_ok=True)
        path = await self.files.data(data, self.spool)  # checked: one MD5 pass per open
        self.files_opened.append(index)
        reader = _Reader(index, path, data, spooled=path.parent == self.spool)
        try:
            for _ in range(skip):
                next(reader.rows)
                reader.read += 1
        except StopIteration:
            pass
        except (OSError, EOFError, zlib.error, csv.Error) as exc:
            reader.close()
            raise self._broken(data, exc) from None
        self._reader = reader
        return reader

    def _broken(self, data: DataFile, exc: BaseException) -> InventoryError:
        what = "truncated gzip" if isinstance(exc, EOFError) else f"unreadable ({exc})"
        return InventoryError(f"{self.manifest.where}: data file {data.key}: {what}")

    async def page(self, marker: str) -> Page:
        index, _, skip = (marker or "0:0").partition(":")
        try:
            at, rows = int(index), int(skip or 0)
        except ValueError:
            raise InventoryError(f"marker {marker!r} is not <file>:<row>") from None
        files = self.manifest.files
        if at >= len(files):
            return Page(marker, (), next_marker=None)
        reader = await self._open(at, rows)
        refs: dict[str, ObjectRef] = {}
        ended = False
        try:
            while reader.read - rows < self.page_size:
                row = next(reader.rows, None)
                if row is None:
                    ended = True
                    break
                reader.read += 1
                if reader.read == 1 and self.columns.is_header(row):
                    continue
                ref = self.columns.ref(row, self.prefix)
                if ref is not None:
                    refs[ref.key] = ref
        except (OSError, EOFError, zlib.error, csv.Error) as exc:
            self.close()
            raise self._broken(reader.data, exc) from None
        objects = tuple(sorted(refs.values(), key=lambda r: r.key))
        if not ended:
            return Page(marker, objects, next_marker=f"{at}:{reader.read}")
        self._ended = at + 1 >= len(files)
        self.close(finished=True)
        following = f"{at + 1}:0" if at + 1 < len(files) else None
        return Page(marker, objects, next_marker=following)


def spool_dir(store_path: str) -> Path:
    """Where data files downloaded from COS wait to be read: beside the store."""
    return Path(store_path).resolve().parent / ".cos-scanner-inventory"


async def open_inventory(
    config: Config,
    http: HttpClient,
    where: str,
    clock: Clock,
    budget: AuditBudget,
    retry: RetryPolicy,
    on_retry: OnRetry | None = None,
    spool: Path | None = None,
) -> InventorySource:
    """The Inventory named by `where` (cos://bucket/key/manifest.json or a path), checked;
    data files from COS downloaded into `spool` (default: beside the store)."""
    files: CosFiles | LocalFiles
    if where.startswith("cos://"):
        objects = ObjectClient(
            http,
            config.cos,
            retry=retry,
            clock=clock,
            budget=budget,
            on_retry=on_retry,
        )
        files = CosFiles(objects, where)
    else:
        files = LocalFiles(Path(where))
    body, checksum = await files.manifest()
    manifest = parse_manifest(body, checksum, where)
    if manifest.source_bucket != config.cos.bucket:
        raise InventoryError(
            f"{where} is of bucket {manifest.source_bucket}, not of the configured "
            f"bucket {config.cos.bucket}"
        )
    if isinstance(files, LocalFiles):
        missing = [f.key for f in manifest.files if files.locate(f.key) is None]
        if missing:
            raise InventoryError(f"{where}: {len(missing)} data file(s) missing, e.g. {missing[0]}")
    return InventorySource(
        manifest,
        files,
        spool or spool_dir(config.store.path),
        config.cos.prefix,
        config.cos.page_size,
    )
