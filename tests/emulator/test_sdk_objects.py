"""The official SDK's object calls against the emulator, unchanged (reference 8): HEAD, GET,
GET/PUT ?acl, copy (with If-Match), DELETE; an anonymous GET obeys the ACL; auto-freeze."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from qcloud_cos.cos_exception import CosServiceError

from scanner.emulator import DEFAULT_BUCKET
from scanner.emulator.bucket import Bucket, StoredObject, etag_of
from scanner.emulator.objects import content
from tests.helpers import Emulator, sdk_client

QUARANTINE = "quarantine-1250000000"


def _put(emulator: Emulator, key: str, size: int = 1000) -> StoredObject:
    obj = StoredObject(etag_of(key), size, datetime(2024, 1, 1, tzinfo=UTC))
    emulator.state.bucket.put(key, obj)
    emulator.state.bucket.keys()
    return obj


async def anonymous_get(url: str, key: str) -> int:
    """An unsigned GET (in a thread: the emulator serves on this event loop)."""

    def get() -> int:
        try:
            with urllib.request.urlopen(f"{url}/{key}", timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    return await anyio.to_thread.run_sync(get)


async def test_head_get_acl_copy_delete(emulator: Emulator) -> None:
    obj = _put(emulator, "albums/u1/a b.jpg", 5000)
    emulator.state.extra_buckets[QUARANTINE] = Bucket()
    client = sdk_client(emulator.url)

    def calls() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["head"] = client.head_object(Bucket=DEFAULT_BUCKET, Key="albums/u1/a b.jpg")
        body = client.get_object(Bucket=DEFAULT_BUCKET, Key="albums/u1/a b.jpg")["Body"]
        out["bytes"] = body.get_raw_stream().read()
        out["acl0"] = client.get_object_acl(Bucket=DEFAULT_BUCKET, Key="albums/u1/a b.jpg")
        client.put_object_acl(Bucket=DEFAULT_BUCKET, Key="albums/u1/a b.jpg", ACL="private")
        out["acl1"] = client.get_object_acl(Bucket=DEFAULT_BUCKET, Key="albums/u1/a b.jpg")
        out["copy"] = client.copy_object(
            Bucket=QUARANTINE,
            Key="q/albums/u1/a b.jpg",
            CopySource={"Bucket": DEFAULT_BUCKET, "Key": "albums/u1/a b.jpg",
                        "Region": "ap-guangzhou"},
            CopyStatus="Copy",
        )  # fmt: skip
        out["delete"] = client.delete_object(Bucket=DEFAULT_BUCKET, Key="albums/u1/a b.jpg")
        out["delete_again"] = client.delete_object(Bucket=DEFAULT_BUCKET, Key="albums/u1/a b.jpg")
        return out

    got = await anyio.to_thread.run_sync(calls)
    assert got["head"]["ETag"] == f'"{obj.etag}"'
    assert got["head"]["Content-Length"] == "5000"
    assert got["bytes"][:3] == b"\xff\xd8\xff"  # a .jpg key: a real JPEG of its size
    assert got["bytes"] == content(obj, "albums/u1/a b.jpg")
    assert len(got["bytes"]) == 5000
    grants = got["acl0"]["AccessControlList"]["Grant"]
    assert "AllUsers" not in str(grants)  # default: no grant of its own
    assert "AllUsers" not in str(got["acl1"]["AccessControlList"])
    assert got["copy"]["ETag"] == f'"{obj.etag}"'
    assert "q/albums/u1/a b.jpg" in emulator.state.extra_buckets[QUARANTINE].objects
    assert "albums/u1/a b.jpg" not in emulator.state.bucket.objects
    writes = emulator.state.stats.writes
    assert writes[f"{DEFAULT_BUCKET}/albums/u1/a b.jpg"] == 3  # acl, delete, delete again
    assert writes[f"{QUARANTINE}/q/albums/u1/a b.jpg"] == 1


async def test_public_read_and_anonymous_access(emulator: Emulator) -> None:
    _put(emulator, "p.jpg")
    client = sdk_client(emulator.url)
    assert await anonymous_get(emulator.url, "p.jpg") == 200  # the bucket is public-read
    await anyio.to_thread.run_sync(
        lambda: client.put_object_acl(Bucket=DEFAULT_BUCKET, Key="p.jpg", ACL="private")
    )
    assert await anonymous_get(emulator.url, "p.jpg") == 403
    await anyio.to_thread.run_sync(
        lambda: client.put_object_acl(Bucket=DEFAULT_BUCKET, Key="p.jpg", ACL="public-read")
    )
    acl = await anyio.to_thread.run_sync(
        lambda: client.get_object_acl(Bucket=DEFAULT_BUCKET, Key="p.jpg")
    )
    assert "AllUsers" in str(acl["AccessControlList"])
    assert await anonymous_get(emulator.url, "p.jpg") == 200
    await anyio.to_thread.run_sync(
        lambda: client.put_object_acl(Bucket=DEFAULT_BUCKET, Key="p.jpg", ACL="default")
    )
    emulator.state.bucket_acl = "private"
    assert await anonymous_get(emulator.url, "p.jpg") == 403  # default inherits the bucket's


async def test_copy_if_match_and_missing_keys(emulator: Emulator) -> None:
    _put(emulator, "c.jpg")
    client = sdk_client(emulator.url)

    def copy_stale() -> None:
        client.copy_object(
            Bucket=DEFAULT_BUCKET,
            Key="c2.jpg",
            CopySource={"Bucket": DEFAULT_BUCKET, "Key": "c.jpg", "Region": "ap-guangzhou"},
            CopyStatus="Copy",
            **{"CopySourceIfMatch": '"not-the-etag"'},
        )

    with pytest.raises(CosServiceError) as info:
        await anyio.to_thread.run_sync(copy_stale)
    assert (info.value.get_status_code(), info.value.get_error_code()) == (
        412,
        "PreconditionFailed",
    )
    with pytest.raises(CosServiceError) as info:
        await anyio.to_thread.run_sync(
            lambda: client.head_object(Bucket=DEFAULT_BUCKET, Key="missing.jpg")
        )
    assert info.value.get_status_code() == 404


async def test_uploads_and_forbid_overwrite(emulator: Emulator) -> None:
    """PUT Object takes the body; `x-cos-forbid-overwrite: true` (sent through the SDK's
    Metadata, reference 14.1) refuses an existing key with 409 FileAlreadyExists; an upload
    resets the key's ACL to what it asks (default: the bucket's)."""
    client = sdk_client(emulator.url)
    key = "albums/u2/new.jpg"

    def calls() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["put"] = client.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=b"first bytes")
        client.put_object_acl(Bucket=DEFAULT_BUCKET, Key=key, ACL="private")
        try:
            client.put_object(
                Bucket=DEFAULT_BUCKET, Key=key, Body=b"second",
                Metadata={"x-cos-forbid-overwrite": "true"},
            )  # fmt: skip
        except CosServiceError as exc:
            out["forbidden"] = (exc.get_status_code(), exc.get_error_code())
        out["again"] = client.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=b"second bytes")
        out["acl"] = client.get_object_acl(Bucket=DEFAULT_BUCKET, Key=key)
        body = client.get_object(Bucket=DEFAULT_BUCKET, Key=key)["Body"]
        out["bytes"] = body.get_raw_stream().read()
        out["fresh"] = client.put_object(
            Bucket=DEFAULT_BUCKET, Key="albums/u2/other.jpg", Body=b"x",
            Metadata={"x-cos-forbid-overwrite": "true"},
        )  # fmt: skip
        return out

    got = await anyio.to_thread.run_sync(calls)
    assert got["put"]["ETag"] == '"' + hashlib.md5(b"first bytes").hexdigest() + '"'
    assert got["forbidden"] == (409, "FileAlreadyExists")
    assert got["bytes"] == b"second bytes"
    assert "AllUsers" not in str(got["acl"]["AccessControlList"])  # default again, inherited
    assert got["fresh"]["ETag"] == '"' + hashlib.md5(b"x").hexdigest() + '"'
    assert await anonymous_get(emulator.url, key) == 200  # the re-upload is public again


async def test_versioning_with_the_sdk(emulator: Emulator) -> None:
    """GET/PUT ?versioning, versionId on HEAD/GET/DELETE and in the copy source, version ids
    in the answers, delete markers (reference 14.3), through the official SDK."""
    old = _put(emulator, "albums/u3/v.jpg", 2000)  # there before versioning: version `null`
    emulator.state.extra_buckets[QUARANTINE] = Bucket()
    client = sdk_client(emulator.url)
    key = "albums/u3/v.jpg"

    def calls() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["never"] = client.get_bucket_versioning(Bucket=DEFAULT_BUCKET)
        client.put_bucket_versioning(Bucket=DEFAULT_BUCKET, Status="Enabled")
        out["enabled"] = client.get_bucket_versioning(Bucket=DEFAULT_BUCKET)
        out["head_null"] = client.head_object(Bucket=DEFAULT_BUCKET, Key=key)
        out["put"] = client.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=b"new upload")
        new_id = out["put"]["x-cos-version-id"]
        out["head_new"] = client.head_object(Bucket=DEFAULT_BUCKET, Key=key)
        out["head_old"] = client.head_object(Bucket=DEFAULT_BUCKET, Key=key, VersionId="null")
        out["copy_old"] = client.copy_object(
            Bucket=QUARANTINE, Key="q/v.jpg",
            CopySource={"Bucket": DEFAULT_BUCKET, "Key": key, "Region": "ap-guangzhou",
                        "VersionId": "null"},
            CopyStatus="Copy",
        )  # fmt: skip
        out["delete_old"] = client.delete_object(Bucket=DEFAULT_BUCKET, Key=key, VersionId="null")
        out["head_after"] = client.head_object(Bucket=DEFAULT_BUCKET, Key=key)
        out["marker"] = client.delete_object(Bucket=DEFAULT_BUCKET, Key=key)
        try:
            client.head_object(Bucket=DEFAULT_BUCKET, Key=key)
        except CosServiceError as exc:
            out["head_marked"] = exc.get_status_code()
        out["head_kept"] = client.head_object(Bucket=DEFAULT_BUCKET, Key=key, VersionId=new_id)
        client.delete_object(
            Bucket=DEFAULT_BUCKET, Key=key, VersionId=out["marker"]["x-cos-version-id"]
        )
        out["back"] = client.head_object(Bucket=DEFAULT_BUCKET, Key=key)
        return out

    got = await anyio.to_thread.run_sync(calls)
    assert got["never"].get("Status") is None
    assert got["enabled"]["Status"] == "Enabled"
    assert got["head_null"]["x-cos-version-id"] == "null"
    assert got["head_null"]["ETag"] == f'"{old.etag}"'
    new_etag = '"' + hashlib.md5(b"new upload").hexdigest() + '"'
    assert got["head_new"]["ETag"] == new_etag
    assert got["head_new"]["x-cos-version-id"] == got["put"]["x-cos-version-id"] != "null"
    assert got["head_old"]["ETag"] == f'"{old.etag}"'
    assert got["copy_old"]["ETag"] == f'"{old.etag}"'  # exactly the old version was copied
    assert emulator.state.extra_buckets[QUARANTINE].objects["q/v.jpg"].etag == old.etag
    assert got["head_after"]["ETag"] == new_etag  # deleting the old version left the new one
    assert got["marker"]["x-cos-delete-marker"] == "true"
    assert got["head_marked"] == 404
    assert got["head_kept"]["ETag"] == new_etag
    assert got["back"]["ETag"] == new_etag  # the marker removed: the upload is back
