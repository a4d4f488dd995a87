"""An Inventory's manifest (reference 4): `manifest.json` checked against `manifest.checksum`,
read as the source bucket, the CSV columns and the data files with their MD5s. Pure."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from scanner.errors import ConfigError


class InventoryError(ConfigError):
    """An Inventory the scanner cannot trust or read: one line, exit 2."""

    kind = "inventory error"


@dataclass(frozen=True, slots=True)
class DataFile:
    key: str
    size: int
    md5: str


@dataclass(frozen=True, slots=True)
class Manifest:
    where: str  # as the user named it
    source_bucket: str  # BucketName-APPID
    destination_bucket: str
    schema: tuple[str, ...]  # column names, as fileSchema lists them
    files: tuple[DataFile, ...]
    count: int | None  # listObjectCount
    digest: str  # MD5 of manifest.json


def _number(doc: dict[str, Any], name: str, where: str) -> int | None:
    raw = doc.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise InventoryError(f"{where}: {name} is not a number ({raw!r})") from None
    if value < 0:
        raise InventoryError(f"{where}: {name} is negative")
    return value


def _full_bucket(name: str, appid: str) -> str:
    return name if not appid or name.endswith(f"-{appid}") else f"{name}-{appid}"


def _data_files(files: object, where: str) -> list[DataFile]:
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise InventoryError(f"{where}: files is not a list of data files")
    data = []
    for n, f in enumerate(files):
        key, md5 = str(f.get("key", "")), str(f.get("md5Checksum", "")).strip('"').lower()
        if not key or len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
            raise InventoryError(f"{where}: files[{n}] has no key or md5Checksum")
        data.append(DataFile(key, _number(f, "size", where) or 0, md5))
    return data


def parse_manifest(body: bytes, checksum: bytes | None, where: str) -> Manifest:
    """The manifest, checked: its MD5 against `manifest.checksum`, its format and fields."""
    digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
    if checksum is None:
        raise InventoryError(f"{where}: manifest.checksum is missing beside it")
    expected = checksum.decode("ascii", "replace").strip().strip('"').lower()
    if expected != digest:
        raise InventoryError(
            f"{where}: manifest.json does not match manifest.checksum "
            f"(MD5 {digest}, checksum says {expected[:32]!r})"
        )
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise InventoryError(f"{where}: manifest.json is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InventoryError(f"{where}: manifest.json is not a JSON object")
    fmt = str(doc.get("fileFormat", ""))
    if fmt.upper() != "CSV":
        raise InventoryError(f"{where}: fileFormat {fmt!r} (only CSV is read)")
    schema = tuple(c.strip() for c in str(doc.get("fileSchema", "")).split(",") if c.strip())
    if "key" not in {c.lower() for c in schema}:
        raise InventoryError(f"{where}: fileSchema has no Key column ({schema})")
    data = _data_files(doc.get("files"), where)
    appid = str(doc.get("sourceAppid", ""))
    source = str(doc.get("sourceBucket", ""))
    if not source:
        raise InventoryError(f"{where}: sourceBucket is missing")
    return Manifest(
        where,
        _full_bucket(source, appid),
        _full_bucket(str(doc.get("destinationBucket", "")), str(doc.get("destinationAppid", ""))),
        schema,
        tuple(data),
        _number(doc, "listObjectCount", where),
        digest,
    )
