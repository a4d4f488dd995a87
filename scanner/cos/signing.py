"""The COS/CI request signature (q-sign-algorithm=sha1), as both official SDKs compute it.

Pure: no clock, no I/O. `start`/`end` are the unix seconds of the key time window.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

#: Headers the Python SDK signs (besides any x-cos-* / x-ci-*); we sign the same set.
SIGNED_HEADERS = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-type",
        "content-md5",
        "content-length",
        "expect",
        "expires",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "origin",
        "range",
        "transfer-encoding",
        "pic-operations",
    }
)


def encode(value: str) -> str:
    """UTF-8 percent-encoding that leaves only A-Za-z0-9-_.~ alone (reference 2.1)."""
    return quote(value, safe="-_.~")


def signable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of `headers` that goes into the signature."""
    return {
        k: v
        for k, v in headers.items()
        if (lk := k.lower()) in SIGNED_HEADERS or lk.startswith(("x-cos-", "x-ci-"))
    }


def _canonical(pairs: Mapping[str, str]) -> tuple[str, str]:
    encoded = sorted((encode(k).lower(), encode(v)) for k, v in pairs.items())
    return ";".join(k for k, _ in encoded), "&".join(f"{k}={v}" for k, v in encoded)


def signature(
    secret_key: str,
    *,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    key_time: str,
) -> tuple[str, str, str]:
    """Return (header_list, param_list, signature) for a request; `path` is decoded."""
    header_list, http_headers = _canonical(headers)
    param_list, http_params = _canonical(params)
    http_string = f"{method.lower()}\n{path}\n{http_params}\n{http_headers}\n"
    digest = hashlib.sha1(http_string.encode()).hexdigest()
    string_to_sign = f"sha1\n{key_time}\n{digest}\n"
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    sig = hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()
    return header_list, param_list, sig


def sign(
    *,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    secret_id: str,
    secret_key: str,
    start: int,
    end: int,
) -> str:
    """The Authorization header value for a request.

    `path` is the decoded URI path with a leading '/'; `params` the exact query sent; `headers`
    the headers to sign (see `signable_headers`), with `host` stripped of any port.
    """
    key_time = f"{start};{end}"
    header_list, param_list, sig = signature(
        secret_key, method=method, path=path, params=params, headers=headers, key_time=key_time
    )
    return (
        f"q-sign-algorithm=sha1&q-ak={secret_id}&q-sign-time={key_time}&q-key-time={key_time}"
        f"&q-header-list={header_list}&q-url-param-list={param_list}&q-signature={sig}"
    )


def parse_authorization(value: str) -> dict[str, str]:
    """Split an Authorization value into its q-* fields (for the emulator's checks)."""
    fields: dict[str, str] = {}
    for part in value.split("&"):
        name, sep, val = part.partition("=")
        if sep:
            fields[name] = val
    return fields


def presign_query(
    *,
    path: str,
    host: str | None,
    secret_id: str,
    secret_key: str,
    start: int,
    end: int,
    token: str | None = None,
) -> str:
    """Query string of a presigned GET of `path` (reference 2.1, signature as URL params).

    `host` is signed when given (real COS); with an endpoint override it is left out, since
    a browser sends the override's host, as the SDK allows with SignHost=False.
    """
    auth = sign(
        method="GET",
        path=path,
        params={},
        headers={"host": host} if host else {},
        secret_id=secret_id,
        secret_key=secret_key,
        start=start,
        end=end,
    )
    query = "&".join(f"{k}={encode(v)}" for k, v in parse_authorization(auth).items())
    if token:
        query += f"&x-cos-security-token={encode(token)}"
    return query
