"""Our TC3-HMAC-SHA256 signer against the official common SDK's, byte for byte.

The SDK builds the request (ImsClient.ImageModeration) with a frozen clock; its send is
replaced to capture the headers and body it would send; our `tc3.authorization` over the same
inputs must give the identical Authorization header.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.http.request import ApiRequest
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.ims.v20201229 import ims_client, models

from scanner.cos import tc3


class _Captured(Exception):
    pass


def sdk_request(params: dict[str, Any], endpoint: str, when: int, token: str | None) -> Any:
    """The headers and body the official SDK would send for ImageModeration(params)."""
    cred = credential.Credential("AKIDexample", "secret/key+with=odd chars", token)
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol="http"))
    client = ims_client.ImsClient(cred, "ap-shanghai", profile)
    request = models.ImageModerationRequest()
    request.from_json_string(json.dumps(params))
    seen: dict[str, Any] = {}

    def capture(self: Any, req: Any, *args: Any, **kw: Any) -> None:
        seen.update(header=dict(req.header), data=req.data)
        raise _Captured

    with (
        mock.patch.object(ApiRequest, "send_request", capture),
        mock.patch("time.time", return_value=float(when)),
        pytest.raises(TencentCloudSDKException),  # the SDK wraps our capture in its own error
    ):
        client.ImageModeration(request)
    return seen["header"], seen["data"]


@pytest.mark.parametrize(
    ("params", "endpoint", "when", "token"),
    [
        ({"FileUrl": "http://x/a.jpg", "DataId": "d1"}, "127.0.0.1:9000", 1700000000, None),
        ({"FileContent": "R0lGODlh", "BizType": "album", "User": {"UserId": "u1"}},
         "ims.tencentcloudapi.com", 1735689599, "sts-token"),  # one second before a new day
        ({"FileUrl": "https://cdn/相册/夏天.jpg", "Interval": 2, "MaxFrames": 3},
         "ims.ap-shanghai.tencentcloudapi.com", 1735689600, None),
    ],
)  # fmt: skip
def test_our_authorization_is_the_sdks(
    params: dict[str, Any], endpoint: str, when: int, token: str | None
) -> None:
    header, data = sdk_request(params, endpoint, when, token)
    body = data.encode() if isinstance(data, str) else data
    ours = tc3.authorization(
        secret_id="AKIDexample", secret_key="secret/key+with=odd chars", service="ims",
        host=header["Host"], content_type=header["Content-Type"], body=body,
        timestamp=int(header["X-TC-Timestamp"]),
    )  # fmt: skip
    assert ours == header["Authorization"]
    assert header["X-TC-Action"] == "ImageModeration"
    assert header["X-TC-Version"] == "2020-12-29"
    assert header.get("X-TC-Token") == token


def test_a_changed_byte_changes_the_signature() -> None:
    args: dict[str, Any] = {
        "secret_id": "id", "secret_key": "k", "service": "ims", "host": "h",
        "content_type": "application/json", "body": b"{}", "timestamp": 1700000000,
    }  # fmt: skip
    base = tc3.authorization(**args)
    for name, value in (("body", b"{ }"), ("host", "h2"), ("timestamp", 1700000001),
                        ("secret_key", "k2"), ("content_type", "text/plain")):  # fmt: skip
        assert tc3.authorization(**{**args, name: value}) != base, name
