"""TC3-HMAC-SHA256: the request signature of Tencent Cloud API 3.0 services (IMS, STS). Pure.

As `tencentcloud-sdk-python-common` computes it (`_build_req_with_tc3_signature`,
`_get_tc3_signature`, `Sign.sign_tc3`; reference 11): the canonical request of a POST signs
the `content-type` and `host` headers and the SHA-256 of the body; the key is the HMAC chain
"TC3"+SecretKey -> UTC date -> service -> "tc3_request".
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def string_to_sign(
    *, method: str, uri: str, query: str, content_type: str, host: str, body: bytes,
    service: str, timestamp: int,
) -> str:  # fmt: skip
    canonical = "\n".join(
        (
            method,
            uri,
            query,
            f"content-type:{content_type}\nhost:{host}\n",
            SIGNED_HEADERS,
            hashlib.sha256(body).hexdigest(),
        )
    )
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature(secret_key: str, service: str, timestamp: int, to_sign: str) -> str:
    key = _hmac(
        _hmac(_hmac(f"TC3{secret_key}".encode(), utc_date(timestamp)), service), "tc3_request"
    )
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    *, secret_id: str, secret_key: str, service: str, host: str, content_type: str,
    body: bytes, timestamp: int, method: str = "POST", uri: str = "/", query: str = "",
) -> str:  # fmt: skip
    """The Authorization header of one request."""
    to_sign = string_to_sign(
        method=method, uri=uri, query=query, content_type=content_type, host=host, body=body,
        service=service, timestamp=timestamp,
    )  # fmt: skip
    sig = signature(secret_key, service, timestamp, to_sign)
    return (
        f"{ALGORITHM} Credential={secret_id}/{utc_date(timestamp)}/{service}/tc3_request, "
        f"SignedHeaders={SIGNED_HEADERS}, Signature={sig}"
    )
