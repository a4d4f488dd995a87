"""An Inventory of the emulated bucket, in COS's layout (reference 4).

`generate` writes, under a folder, the files a daily Inventory run puts in its destination
bucket and serves them from that bucket (an extra bucket of the emulator, `inventory-<appid>`
unless named), so `scan --inventory cos://...` reads them exactly as from COS:

    <prefix>/<appid>/<bucket>/<id>/data/<md5>.csv.gz        the rows, `rows_per_file` each
    <prefix>/<appid>/<bucket>/<id>/<YYYYMMDD>/manifest.json  fileSchema, files, md5Checksum
    <prefix>/<appid>/<bucket>/<id>/<YYYYMMDD>/manifest.checksum   MD5 of manifest.json

Rows are in key order, every field double-quoted (as S3 inventories are), no header row, keys
URL-encoded (`quote`, so a space is `%20` and a plus `%2B`), `LastModifiedDate` ISO 8601 and the
ETag bare hex, all choices the reference lists as unconfirmed and the reader tolerates either
way. Numbers in the manifest are JSON strings, as in COS's example.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scanner.emulator.bucket import Bucket, StoredObject
from scanner.emulator.state import EmulatorState

SCHEMA = (
    "Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, "
    "ReplicationStatus"
)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _gzip_rows(rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return gzip.compress(text.getvalue().encode(), compresslevel=6, mtime=0)


def generate(
    state: EmulatorState,
    *,
    folder: Path | None = None,
    config_id: str = "daily",
    prefix: str = "cos_bucket_inventory",
    rows_per_file: int = 250_000,
    destination: str = "",
    day: str = "",
) -> dict[str, Any]:
    """Write an Inventory of the bucket as it is now; serve it from the destination bucket."""
    if rows_per_file < 1:
        raise ValueError("rows_per_file must be >= 1")
    name, _, appid = state.bucket_name.rpartition("-")
    if not name or not appid.isdigit():
        name, appid = state.bucket_name, "1250000000"
    destination = destination or f"inventory-{appid}"
    if folder is None:
        if state.inventory_dir is None:
            state.inventory_dir = tempfile.TemporaryDirectory(prefix="emulator-inventory-")
        folder = Path(state.inventory_dir.name)
    day = day or datetime.now(UTC).strftime("%Y%m%d")
    base = f"{prefix}/{appid}/{name}/{config_id}"
    served = state.extra_buckets.setdefault(destination, Bucket())
    files: list[dict[str, str]] = []
    size_total = 0
    keys = state.bucket.keys()

    def put(key: str, data: bytes) -> str:
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        etag = _md5(data)
        served.put(key, StoredObject(etag, len(data), datetime.now(UTC), path=path))
        return etag

    for start in range(0, len(keys), rows_per_file):
        rows = []
        for key in keys[start : start + rows_per_file]:
            obj = state.bucket.objects[key]
            size_total += obj.size
            rows.append(
                [
                    appid,
                    name,
                    quote(key, safe="/"),
                    str(obj.size),
                    obj.last_modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    obj.etag,
                    obj.storage_class,
                    "false",
                    "",
                ]
            )
        data = _gzip_rows(rows)
        key = f"{base}/data/{_md5(data)}.csv.gz"
        files.append({"key": key, "size": str(len(data)), "md5Checksum": put(key, data)})
    manifest = {
        "sourceAppid": appid,
        "sourceBucket": name,
        "destinationAppid": appid,
        "destinationBucket": destination.removesuffix(f"-{appid}"),
        "fileFormat": "CSV",
        "listObjectCount": str(len(keys)),
        "listStorageSize": str(size_total),
        "filterObjectCount": str(len(keys)),
        "filterStorageSize": str(size_total),
        "fileSchema": SCHEMA,
        "files": files,
    }
    body = json.dumps(manifest, indent=1).encode()
    manifest_key = f"{base}/{day}/manifest.json"
    put(manifest_key, body)
    put(f"{base}/{day}/manifest.checksum", _md5(body).encode())
    return {
        "manifest": f"cos://{destination}/{manifest_key}",
        "path": str(folder / manifest_key),
        "files": len(files),
        "objects": len(keys),
    }
