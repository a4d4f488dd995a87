"""Our signer against the three published vectors and the official SDK's CosS3Auth."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from qcloud_cos import CosConfig
from qcloud_cos.cos_auth import CosS3Auth

from scanner.cos.signing import encode, parse_authorization, sign, signable_headers, signature


def test_vector_1_put_with_headers() -> None:
    headers = {
        "Date": "Thu, 16 May 2019 06:45:51 GMT",
        "Host": "examplebucket-1250000000.cos.ap-beijing.myqcloud.com",
        "Content-Type": "text/plain",
        "Content-Length": "13",
        "Content-MD5": "mQ/fVh815F3k6TAUm8m0eg==",
        "x-cos-acl": "private",
        "x-cos-grant-read": 'uin="100000000011"',
    }
    header_list, param_list, sig = signature(
        "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz",
        method="PUT",
        path="/exampleobject(腾讯云)",
        params={},
        headers=headers,
        key_time="1557989151;1557996351",
    )
    assert (
        header_list
        == "content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read"
    )
    assert param_list == ""
    assert sig == "3b8851a11a569213c17ba8fa7dcf2abec6935172"


def test_vector_2_get_with_params() -> None:
    _h, param_list, sig = signature(
        "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz",
        method="GET",
        path="/exampleobject(腾讯云)",
        params={
            "response-content-type": "application/octet-stream",
            "response-cache-control": "max-age=600",
        },
        headers={
            "Date": "Thu, 16 May 2019 06:55:53 GMT",
            "Host": "examplebucket-1250000000.cos.ap-beijing.myqcloud.com",
        },
        key_time="1557989753;1557996953",
    )
    assert param_list == "response-cache-control;response-content-type"
    assert sig == "01681b8c9d798a678e43b685a9f1bba0f6c0e012"


def test_vector_3_go_sdk_authorization() -> None:
    value = sign(
        method="PUT",
        path="/testfile2",
        params={},
        headers={
            "Host": "testbucket-125000000.cos.ap-guangzhou.myqcloud.com",
            "x-cos-content-sha1": "db8ac1c259eb89d4a131b253bacfca5f319d54f2",
            "x-cos-stroage-class": "nearline",
        },
        secret_id="QmFzZTY0IGlzIGEgZ2VuZXJp",
        secret_key="AKIDZfbOA78asKUYBcXFrJD0a1ICvR98JM",
        start=1480932292,
        end=1481012292,
    )
    assert value == (
        "q-sign-algorithm=sha1&q-ak=QmFzZTY0IGlzIGEgZ2VuZXJp&q-sign-time=1480932292;1481012292"
        "&q-key-time=1480932292;1481012292&q-header-list=host;x-cos-content-sha1;"
        "x-cos-stroage-class&q-url-param-list=&q-signature=ce4ac0ecbcdb30538b3fee0a97cc6389694ce53a"
    )


def test_encode_leaves_only_unreserved() -> None:
    assert encode("a b/c+d%e~f_g.h-i") == "a%20b%2Fc%2Bd%25e~f_g.h-i"
    assert encode("腾") == "%E8%85%BE"


def test_signable_headers_follow_the_sdk() -> None:
    headers = {
        "Host": "h",
        "User-Agent": "x",
        "Content-Type": "t",
        "x-ci-security-token": "s",
        "Accept": "*/*",
        "X-Cos-Meta-A": "1",
    }
    assert set(signable_headers(headers)) == {
        "Host",
        "Content-Type",
        "x-ci-security-token",
        "X-Cos-Meta-A",
    }


SDK_CASES: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
    (
        "GET",
        "/",
        {"prefix": "", "delimiter": "", "marker": "", "max-keys": "1000", "encoding-type": "url"},
        {"Host": "b-1250000000.cos.ap-guangzhou.myqcloud.com"},
    ),
    (
        "GET",
        "/",
        {"prefix": "相册/a b+c%", "marker": "x/y z", "max-keys": "7", "encoding-type": "url"},
        {"Host": "b-1250000000.cos.ap-guangzhou.myqcloud.com"},
    ),
    (
        "POST",
        "/image/auditing",
        {},
        {
            "Host": "b-1250000000.ci.ap-guangzhou.myqcloud.com",
            "Content-Type": "application/xml",
            "Content-Length": "321",
        },
    ),
    (
        "POST",
        "/image/auditing",
        {},
        {
            "Host": "b-1250000000.ci.ap-guangzhou.myqcloud.com",
            "Content-Type": "application/xml",
            "Content-Length": "9",
            "x-ci-security-token": "tok/en+==",
        },
    ),
    (
        "GET",
        "/dir/a b(腾讯云).jpg",
        {"response-cache-control": "max-age=600"},
        {"Host": "b-1250000000.cos.ap-guangzhou.myqcloud.com", "User-Agent": "not signed"},
    ),
]


@pytest.mark.parametrize(("method", "path", "params", "headers"), SDK_CASES)
def test_matches_sdk_cos_s3_auth(
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
) -> None:
    now = 1700000000
    monkeypatch.setattr("qcloud_cos.cos_auth.time.time", lambda: now)
    conf = CosConfig(Region="ap-guangzhou", SecretId="AKIDtest", SecretKey="s3cr3t/key+")
    request: Any = SimpleNamespace(
        method=method, url="http://127.0.0.1:9000" + path, headers=dict(headers)
    )
    CosS3Auth(conf, path, params=params, expire=10000)(request)
    ours = sign(
        method=method,
        path=path,
        params=params,
        headers=signable_headers(headers),
        secret_id="AKIDtest",
        secret_key="s3cr3t/key+",
        start=now - 60,
        end=now + 10000,
    )
    assert ours == request.headers["Authorization"]


def test_parse_authorization_round_trip() -> None:
    value = sign(
        method="GET",
        path="/",
        params={"a": "1"},
        headers={"host": "h"},
        secret_id="id",
        secret_key="k",
        start=1,
        end=2,
    )
    fields = parse_authorization(value)
    assert fields["q-ak"] == "id"
    assert fields["q-key-time"] == "1;2"
    assert fields["q-url-param-list"] == "a"
    assert len(fields["q-signature"]) == 40
