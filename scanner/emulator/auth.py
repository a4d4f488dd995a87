"""Signature checks as COS/CI perform them (reference 2.5), for header and query signatures.

Returns None when the request is allowed, else (status, code, message) in the style of the
service it was sent to (COS: 403 + COS codes; CI: 401 + CI codes).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from scanner.cos.signing import encode, parse_authorization, signature
from scanner.emulator.state import EmulatorState, KeyPair

Denial = tuple[int, str, str]

_COS = {
    "missing": (403, "AccessDenied", "Access Denied."),
    "algorithm": (403, "AccessDenied", "q-sign-algorithm must be sha1"),
    "expired": (403, "AccessDenied", "Request has expired"),
    "skewed": (
        403,
        "RequestTimeTooSkewed",
        "The difference between the request time and the server's time is too large.",
    ),
    "unknown": (
        403,
        "InvalidAccessKeyId",
        "The Access Key Id you provided does not exist in our records.",
    ),
    "token": (403, "InvalidToken", "The provided token is malformed or otherwise invalid."),
    "token_expired": (400, "ExpiredToken", "The provided token has expired."),
    "mismatch": (403, "SignatureDoesNotMatch", "The Signature you specified is invalid."),
}
_CI = {
    "missing": (401, "MissingAuthorization", "Authorization is missing"),
    "algorithm": (401, "InvalidAuthorization", "q-sign-algorithm must be sha1"),
    "expired": (401, "SignatureExpired", "Signature has expired"),
    "skewed": (401, "SignatureExpired", "Signature is not yet valid"),
    "unknown": (401, "SecretidNotExist", "SecretId does not exist"),
    "token": (401, "InvalidAuthorization", "Invalid security token"),
    "token_expired": (400, "ExpiredToken", "The provided token has expired."),
    "mismatch": (401, "InvalidAuthorization", "Signature does not match"),
}
MAX_SKEW = 900  # seconds a signature may start in the future


def strip_port(host: str) -> str:
    """`Host` without its port ("[::1]:9000" -> "[::1]"), as clients sign it."""
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and not name.endswith(":"):
        return name
    return host


def _fields(query: Mapping[str, str], headers: Mapping[str, str]) -> dict[str, str]:
    if "q-signature" in query:  # a presigned URL
        return {k: v for k, v in query.items() if k.startswith("q-")}
    return parse_authorization(headers.get("Authorization", ""))


def _token_denial(
    pair: KeyPair, query: Mapping[str, str], headers: Mapping[str, str], now: float
) -> str | None:
    if pair.token is None:
        return None
    token = (
        headers.get("x-cos-security-token")
        or headers.get("x-ci-security-token")
        or query.get("x-cos-security-token", "")
    )
    if token != pair.token:
        return "token"
    if pair.token_expires is not None and now > pair.token_expires:
        return "token_expired"
    return None


def _window_denial(key_time: str, now: float) -> str | None:
    try:
        start, end = (int(t) for t in key_time.split(";"))
    except ValueError:
        return "mismatch"
    if now > end:
        return "expired"
    if start > now + MAX_SKEW:
        return "skewed"
    return None


def _signature_matches(
    pair: KeyPair,
    fields: Mapping[str, str],
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> bool:
    signed_headers = {
        h: strip_port(headers.get(h, "")) if h == "host" else headers.get(h, "")
        for h in fields.get("q-header-list", "").split(";")
        if h
    }
    # q-url-param-list names the parameters encoded and lowercased (a processing key such as
    # imageMogr2/thumbnail/!20p is imagemogr2%2fthumbnail%2f%2120p): find what was sent
    sent = {encode(k).lower(): (k, v) for k, v in query.items()}
    params = dict(sent.get(p, (p, "")) for p in fields.get("q-url-param-list", "").split(";") if p)
    _h, _p, expected = signature(
        pair.secret_key,
        method=method,
        path=path,
        params=params,
        headers=signed_headers,
        key_time=fields.get("q-key-time", ""),
    )
    return hmac.compare_digest(expected, fields.get("q-signature", ""))


def check_request(
    state: EmulatorState,
    *,
    service: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    now: float,
) -> Denial | None:
    """Verify the request's signature (Authorization header, or q-* query parameters)."""
    table = _CI if service == "ci" else _COS
    fields = _fields(query, headers)
    if "q-signature" not in fields:
        return table["missing"]
    if fields.get("q-sign-algorithm") != "sha1":
        return table["algorithm"]
    reason = _window_denial(fields.get("q-key-time", ""), now)
    if reason is not None:
        return table[reason]
    pair = state.keys.get(fields.get("q-ak", ""))
    if pair is None:
        return table["unknown"]
    reason = _token_denial(pair, query, headers, now)
    if reason is not None:
        state.stats.expired_tokens += reason == "token_expired"
        return table[reason]
    if not _signature_matches(pair, fields, method, path, query, headers):
        return table["mismatch"]
    return None
