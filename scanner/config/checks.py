"""What a valid value is, per key, and how text from the environment becomes a typed value."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from scanner.config.settings import (
    ACT_ACTIONS,
    CREDENTIAL_PROVIDERS,
    DETECT_TYPES,
    MAX_BATCH_SIZE,
    MAX_SCENES,
    NOTIFY_EVENTS,
    NOTIFY_FORMATS,
    Webhook,
    detect_scenes,
)
from scanner.config.window import Window
from scanner.errors import ConfigError
from scanner.media import MEDIA_CLASSES

_COS_URL = re.compile(r"^cos://[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,}/(?:[^/].*/)?$")
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,}$")
#: DetectType scenes in the service's spelling and order (reference 3.1; the SDK's CiDetectType).
Check = Callable[[Any], str | None]


def _at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be >= {low}"


def _between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def _window(v: str) -> str | None:
    if not v:
        return None
    try:
        Window.parse(v)
    except ConfigError:
        return "must be HH:MM-HH:MM (local time), e.g. 01:00-06:00"
    return None


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


#: Regions where CI moderates content (reference: "Regions with moderation", S22 436/45435).
MODERATION_REGIONS = (
    "ap-beijing", "ap-nanjing", "ap-shanghai", "ap-guangzhou", "ap-chengdu", "ap-chongqing",
    "ap-hongkong", "ap-singapore", "eu-frankfurt",
)  # fmt: skip


def region_warning(region: str) -> str | None:
    """A line for a region CI does not moderate in (a typo, most likely), or None."""
    if region in MODERATION_REGIONS:
        return None
    return (
        f"cos.region {region!r} is not one of the regions where CI moderates content "
        f"({', '.join(MODERATION_REGIONS)}): a typo? COS will answer NoSuchBucket"
    )


def _region(v: str) -> str | None:
    return None if _REGION.match(v) else "must look like ap-guangzhou"


def _bucket(v: str) -> str | None:
    if not v:
        return "is required (BucketName-APPID, e.g. examplebucket-1250000000)"
    if not _BUCKET.match(v):
        return "must be BucketName-APPID: lowercase letters, digits, '-', ending in -<appid>"
    return None


#: Keys whose value a problem never echoes (an endpoint may carry user:password@).
NO_ECHO = frozenset({"cos.endpoint", "audit.endpoint", "ims.endpoint", "notify.webhooks"})


def _endpoint(v: str) -> str | None:
    if not v:
        return None
    try:
        parts = urlsplit(v)
    except ValueError:
        return "is not a URL"
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@); they go in the environment"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    if parts.path not in ("", "/") or parts.query:
        return "must have no path or query"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid port"
    return None


def _base_url(v: str, *, slash: bool) -> str | None:
    """An http(s) URL without credentials or query; with `slash`, a base ending in '/'."""
    try:
        parts = urlsplit(v)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return "must be an http:// or https:// URL without user:password@"
    if parts.query or (slash and not parts.path.endswith("/")):
        return "must end with '/' and have no query" if slash else "must have no query"
    return None


def _iso(v: str) -> str | None:
    if not v:
        return None
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return "must be an ISO date or date-time, e.g. 2024-01-31 or 2024-01-31T12:00:00Z"
    return None


def _detect_type(v: str) -> str | None:
    if detect_scenes(v) is not None:
        return None
    known = {t.lower() for t in DETECT_TYPES} | {"all"}
    bad = [t.strip() for t in v.split(",") if t.strip() and t.strip().lower() not in known]
    return f"unknown type(s) {bad}; choose from {','.join(DETECT_TYPES)} (any case) or all"


def _user_regex(v: str) -> str | None:
    if not v:
        return None
    try:
        pattern = re.compile(v)
    except re.error as exc:
        return f"is not a regular expression: {exc}"
    return None if "user" in pattern.groupindex else "needs a named group: (?P<user>...)"


CHECKS: dict[str, Check] = {
    "scan.user_from_key": _user_regex,
    "cos.region": _region,
    "cos.bucket": _bucket,
    "cos.endpoint": _endpoint,
    "cos.page_size": _between(1, 1000),
    "cos.list_concurrency": _between(1, 64),
    "cos.qps": _between(0.01, 100_000),
    "cos.timeout": _between(0.01, 3600),
    "cos.max_response_bytes": _at_least(1024),
    "audit.endpoint": _endpoint,
    "audit.detect_type": _detect_type,
    "audit.batch_size": _between(1, MAX_BATCH_SIZE),
    "audit.concurrency": _between(1, 1000),
    "audit.qps": _between(0.01, 100_000),
    "audit.interval": _at_least(0),
    "audit.max_frames": _at_least(0),
    "audit.timeout": _between(0.01, 3600),
    "audit.resend_after_timeout": _between(0, 10),
    "audit.max_response_bytes": _at_least(1024),
    "audit.unit_price": _between(0, 1_000_000),
    "audit.large_image_price": _between(0, 1_000_000),
    "audit.billed_scenes": _between(0, MAX_SCENES),
    "scan.modified_after": lambda v: _iso(v),
    "scan.modified_before": lambda v: _iso(v),
    "scan.min_size": _at_least(0),
    "scan.daily_cap": _at_least(0),
    "scan.window": _window,
    "scan.max_size": _at_least(0),
    "scan.max_attempts": _between(1, 20),
    "scan.batch_wait": _between(0.001, 60),
    "scan.lease_stale_after": _between(5, 86_400),
    "scan.progress_interval": _between(0.1, 86_400),
    "retry.attempts": _between(1, 100),
    "retry.deadline": _between(0.01, 86_400),
    "retry.wait_initial": _between(0, 3600),
    "retry.wait_max": _between(0, 3600),
    "retry.throttle_patience": _between(1, 7 * 86_400),
    "store.path": lambda v: None if v else "must not be empty",
    "act.qps": _between(0.01, 100_000),
    "act.concurrency": _between(1, 1000),
    "act.on_flagged": lambda v: (
        None if v in ("", *ACT_ACTIONS) else "must be private, quarantine or empty"
    ),
    "act.min_score": _between(0, 100),
    "audit.service": lambda v: None if v in ("ci", "ims") else "must be ci or ims",
    "ims.endpoint": _endpoint,
    "ims.region": _region,
    "ims.input": lambda v: None if v in ("url", "content") else "must be url or content",
    "ims.qps": _between(0.01, 100_000),
    "ims.concurrency": _between(1, 1000),
    "ims.url_expiry": _between(60, 7 * 86_400),
    "ims.timeout": _between(0.01, 3600),
    "notify.on": lambda v: (
        None if set(v) <= set(NOTIFY_EVENTS) else f"must be among {', '.join(NOTIFY_EVENTS)}"
    ),
    "notify.timeout": _between(0.1, 300),
    "review.claim_minutes": _between(0.1, 1440),
    "review.on_block": lambda v: (
        None if v in ("none", "private", "quarantine") else "must be none, private or quarantine"
    ),
    "review.on_approve": lambda v: None if v in ("none", "restore") else "must be none or restore",
    "credentials.provider": lambda v: (
        None if v in CREDENTIAL_PROVIDERS else f"must be one of {', '.join(CREDENTIAL_PROVIDERS)}"
    ),
    "credentials.metadata_endpoint": lambda v: _base_url(v, slash=True),
    "credentials.sts_endpoint": lambda v: _base_url(v, slash=False),
    "credentials.role": lambda v: (
        None if re.fullmatch(r"[\w+=,.@-]{0,128}", v) else "is not a CAM role name"
    ),
    "credentials.duration_seconds": _between(900, 43_200),
    "scan.media": lambda v: (
        None if v and set(v) <= set(MEDIA_CLASSES) else f"must be among {', '.join(MEDIA_CLASSES)}"
    ),
    "jobs.concurrency": _between(1, 1000),
    "jobs.qps": _between(0.01, 100_000),
    "jobs.poll_interval": _between(0.01, 3600),
    "jobs.poll_max": _between(0.01, 86_400),
    "jobs.timeout": _between(0.01, 3600),
    "video.snapshot_mode": lambda v: (
        None if v in ("Interval", "Average", "Fps") else "must be Interval, Average or Fps"
    ),
    "video.snapshot_count": _between(1, 10_000),
    "video.snapshot_interval": lambda v: None if 0 < v <= 60 else "must be in (0, 60]",
    "video.unit_price": _between(0, 1_000_000),
    "audio.unit_price": _between(0, 1_000_000),
    "document.unit_price": _between(0, 1_000_000),
    "review.public_url": lambda v: (
        None if not v or v.startswith(("http://", "https://")) else "must be an http(s) URL"
    ),
    "act.quarantine_to": lambda v: (
        None if not v or _COS_URL.match(v) else "must be cos://bucket-appid/prefix/"
    ),
    **{
        f"audit.freeze.{f}_score": _between(0, 100)
        for f in ("porn", "ads", "illegal", "terrorism", "politics", "abuse", "teenager")
    },
}


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _as_bool(raw: Any, from_text: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if from_text and str(raw).lower() in _TRUE + _FALSE:
        return str(raw).lower() in _TRUE
    raise ValueError("must be true or false")


def _as_int(raw: Any, from_text: bool) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if from_text and re.fullmatch(r"-?\d+", str(raw).strip()):
        return int(raw)
    raise ValueError("must be an integer")


def _as_float(raw: Any, from_text: bool) -> float:
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif from_text:
        try:
            value = float(raw)
        except ValueError:
            pass
    if value is None:
        raise ValueError("must be a number")
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _as_strings(raw: Any, from_text: bool) -> tuple[str, ...]:
    if from_text and isinstance(raw, str):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    if isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        return tuple(raw)
    raise ValueError("must be a list of strings")


def _as_str(raw: Any, from_text: bool) -> str:
    if isinstance(raw, str):
        return raw
    raise ValueError("must be a string")


def _as_webhooks(raw: Any, from_text: bool) -> tuple[Webhook, ...]:
    """`[[notify.webhooks]]` tables (or, from the environment, the same as a JSON list)."""
    if from_text and isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValueError("must be a JSON list of {url, format, secret}") from None
    if not isinstance(raw, list) or not all(isinstance(w, dict) for w in raw):
        raise ValueError("must be a list of tables with url, format and secret")
    out = []
    for n, w in enumerate(raw, 1):
        unknown = set(w) - {"url", "format", "secret"}
        if unknown:
            raise ValueError(f"webhook {n}: unknown key {sorted(unknown)[0]!r}")
        url, fmt, secret = w.get("url"), w.get("format", "json"), w.get("secret", "")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {n}: url must be an http(s) URL")
        if fmt not in NOTIFY_FORMATS:
            raise ValueError(f"webhook {n}: format must be one of {', '.join(NOTIFY_FORMATS)}")
        if not isinstance(secret, str):
            raise ValueError(f"webhook {n}: secret must be a string")
        out.append(Webhook(url, fmt, secret))
    return tuple(out)


_COERCE: dict[Any, Callable[[Any, bool], Any]] = {
    tuple[Webhook, ...]: _as_webhooks,
    bool: _as_bool,
    int: _as_int,
    float: _as_float,
    str: _as_str,
    tuple[str, ...]: _as_strings,
}


def coerce(raw: Any, kind: Any, from_text: bool) -> Any:
    """Return `raw` as `kind`, or raise ValueError with the reason."""
    return _COERCE[kind](raw, from_text)
