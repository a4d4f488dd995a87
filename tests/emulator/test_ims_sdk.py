"""The official IMS SDK (the referee) against the emulator's ImageModeration, unchanged.

`tencentcloud-sdk-python-ims` with `HttpProfile(endpoint="127.0.0.1:PORT", protocol="http")`
(reference 11), run in a worker thread while the emulator serves on the event loop. FileUrl
is a presigned GET URL made by the official COS SDK: the emulator fetches it for real.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from qcloud_cos import CosConfig, CosS3Client
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.ims.v20201229 import ims_client, models

from scanner.emulator import DEFAULT_BUCKET, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, KeyPair
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.emulator.objects import content
from scanner.emulator.rules import verdict_for
from tests.helpers import Emulator


def ims(url: str, secret_key: str = DEFAULT_SECRET_KEY, token: str | None = None) -> Any:
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=urlsplit(url).netloc, protocol="http"))
    cred = credential.Credential(DEFAULT_SECRET_ID, secret_key, token)
    return ims_client.ImsClient(cred, "ap-guangzhou", profile)


def presigned(url: str, key: str, expired: int = 300) -> str:
    parts = urlsplit(url)
    conf = CosConfig(Region="ap-guangzhou", SecretId=DEFAULT_SECRET_ID,
                     SecretKey=DEFAULT_SECRET_KEY, IP=parts.hostname, Port=parts.port,
                     Scheme="http")  # fmt: skip
    link: str = CosS3Client(conf).get_presigned_url(
        Bucket=DEFAULT_BUCKET, Key=key, Method="GET", Expired=expired
    )
    return link


def moderate(client: Any, params: dict[str, Any]) -> dict[str, Any]:
    request = models.ImageModerationRequest()
    request.from_json_string(json.dumps(params))
    answer: dict[str, Any] = json.loads(client.ImageModeration(request).to_json_string())
    return answer


def error_code(client: Any, params: dict[str, Any]) -> str:
    try:
        moderate(client, params)
    except TencentCloudSDKException as exc:
        return str(exc.get_code())
    raise AssertionError("no error")


def put(emulator: Emulator, *keys: str) -> None:
    for key in keys:
        emulator.state.bucket.put(key, StoredObject(etag_of(key), 5000, datetime.now(UTC)))


async def test_sdk_moderates_presigned_urls_with_the_rules_verdicts(emulator: Emulator) -> None:
    put(emulator, "nsfw/1.jpg", "ad_2.png", "相册/夏天 1.jpg")
    client = ims(emulator.url)
    for key in ("nsfw/1.jpg", "ad_2.png", "相册/夏天 1.jpg"):
        link = presigned(emulator.url, key)
        got = await anyio.to_thread.run_sync(
            moderate, client, {"FileUrl": link, "DataId": "d-1", "BizType": "album",
                               "User": {"UserId": "u42"}}
        )  # fmt: skip
        rule = verdict_for(key, emulator.state.bucket.objects[key])
        want = {0: "Pass", 1: "Block", 2: "Review"}[rule.result]
        assert (got["Suggestion"], got["Label"], got["Score"]) == (want, rule.label, rule.score)
        assert got["DataId"] == "d-1"
        assert got["BizType"] == "album"
        assert got["RequestId"]
    assert emulator.state.stats.audits == {"nsfw/1.jpg": 1, "ad_2.png": 1, "相册/夏天 1.jpg": 1}
    assert emulator.state.stats.users == {"u42": 3}
    ads = await anyio.to_thread.run_sync(
        moderate, client, {"FileUrl": presigned(emulator.url, "ad_2.png")}
    )
    assert ads["LabelResults"][0]["Scene"] == "Ads"
    assert ads["OcrResults"][0]["Details"][0]["Keywords"] == ["加微信", "领红包"]


async def test_sdk_moderates_file_content(emulator: Emulator) -> None:
    put(emulator, "nsfw/x.jpg")
    data = content(emulator.state.bucket.objects["nsfw/x.jpg"])
    emulator.state.served.clear()
    client = ims(emulator.url)
    unknown = await anyio.to_thread.run_sync(
        moderate, client, {"FileContent": base64.b64encode(data).decode()}
    )
    assert unknown["Suggestion"] in ("Pass", "Block", "Review")  # judged by its bytes
    link = presigned(emulator.url, "nsfw/x.jpg")  # once served, the bytes are the object's
    await anyio.to_thread.run_sync(moderate, client, {"FileUrl": link})
    got = await anyio.to_thread.run_sync(
        moderate, client, {"FileContent": base64.b64encode(data).decode()}
    )
    assert (got["Suggestion"], got["Label"]) == ("Block", "Porn")


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong key", "AuthFailure.SignatureFailure"),
        ("expired url", "ResourceUnavailable.ImageDownloadError"),
        ("missing object", "ResourceUnavailable.ImageDownloadError"),
        ("not an image", "InvalidParameterValue.InvalidImageContent"),
        ("bad data id", "InvalidParameterValue.InvalidDataId"),
        ("token required", "AuthFailure.TokenFailure"),
        ("throttled", "RequestLimitExceeded"),
    ],
)
async def test_sdk_sees_the_documented_errors(emulator: Emulator, case: str, code: str) -> None:
    put(emulator, "a.jpg", "doc.mp4")
    client = ims(emulator.url, secret_key="wrong" if case == "wrong key" else DEFAULT_SECRET_KEY)
    params: dict[str, Any] = {"FileUrl": presigned(emulator.url, "a.jpg")}
    if case == "expired url":
        params["FileUrl"] = presigned(emulator.url, "a.jpg", expired=1)
        emulator.state.clock_offset = 60
    if case == "missing object":
        params["FileUrl"] = presigned(emulator.url, "gone.jpg")
    if case == "not an image":
        params["FileUrl"] = presigned(emulator.url, "doc.mp4")
    if case == "bad data id":
        params["DataId"] = "has spaces"
    if case == "token required":
        emulator.state.keys[DEFAULT_SECRET_ID] = KeyPair(DEFAULT_SECRET_KEY, token="sts")
    if case == "throttled":
        emulator.state.faults.qps_cap = 1
        await anyio.to_thread.run_sync(moderate, client, params)
    assert await anyio.to_thread.run_sync(error_code, client, params) == code
