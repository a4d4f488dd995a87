"""Configuration: a TOML file, environment variables and flags, validated all at once.

Precedence: flag > environment > file > default. Secrets come only from the environment
(`TENCENTCLOUD_SECRET_ID`, `TENCENTCLOUD_SECRET_KEY`, `TENCENTCLOUD_SESSION_TOKEN`); any other
key can be set from the environment as `COS_SCANNER_<SECTION>_<KEY>` (e.g.
`COS_SCANNER_COS_BUCKET`). Every problem is collected and reported in one ConfigError, naming
the key and the value. Unknown keys are errors. This is the only module that reads the config
file or the environment.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scanner.errors import ConfigError

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"
ENV_PREFIX = "COS_SCANNER_"

DEFAULT_REGION = "ap-guangzhou"
DEFAULT_PAGE_SIZE = 1000
DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 100
DEFAULT_CONCURRENCY = 16
DEFAULT_QPS = 20.0
DEFAULT_STORE_PATH = "scanner.db"
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Credentials:
    """A key pair and optional session token; never printed."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CosSettings:
    region: str = DEFAULT_REGION  # e.g. ap-guangzhou
    bucket: str = ""  # BucketName-APPID
    prefix: str = ""  # only keys under this prefix
    endpoint: str = ""  # override, e.g. http://127.0.0.1:9000 (Host still names the bucket)
    page_size: int = DEFAULT_PAGE_SIZE  # ListObjects max-keys, 1..1000
    timeout: float = 30.0  # seconds per request
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # larger answers are refused


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditSettings:
    endpoint: str = ""  # override for the CI host
    biz_type: str = ""  # moderation policy; empty = account default
    detect_type: str = ""  # deprecated comma list, any case, or "all"; empty = not sent
    policy_version: str = ""  # bump after editing the BizType policy in the console
    batch_size: int = DEFAULT_BATCH_SIZE  # images per request, 1..100
    concurrency: int = DEFAULT_CONCURRENCY  # requests in flight
    qps: float = DEFAULT_QPS  # request budget per second (strict, no burst)
    interval: int = 0  # GIF: audit every Nth frame; 0 = not sent (API default 5)
    max_frames: int = 0  # GIF: at most N frames; 0 = not sent (API default 5)
    large_image_detect: bool = False  # compress 5-32 MB images before auditing (billed)
    timeout: float = 60.0  # seconds per request (see README: why 60)
    resend_after_timeout: int = 1  # resends of a batch whose answer was lost (maybe billed)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    unit_price: float = 0.0  # price per billed unit (image x scene), for --dry-run estimates
    large_image_price: float = 0.0  # price per image compressed by LargeImageDetect
    billed_scenes: int = 0  # scenes billed per image; 0 = count detect_type (unknown if empty)

    @property
    def scenes(self) -> tuple[str, ...]:
        """The DetectType scenes, canonical (service spelling and order); () when not sent."""
        return detect_scenes(self.detect_type) or ()

    @property
    def scenes_per_image(self) -> int | None:
        """Billed units per audited image, or None when neither setting tells (a BizType
        policy's scenes are configured in the console, where the scanner cannot see them)."""
        if self.billed_scenes:
            return self.billed_scenes
        return len(self.scenes) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSettings:
    include: tuple[str, ...] = ()  # glob patterns on the key; empty = every key
    exclude: tuple[str, ...] = ()  # glob patterns on the key to skip
    modified_after: str = ""  # ISO date/time: skip objects modified before it
    modified_before: str = ""  # ISO date/time: skip objects modified at or after it
    min_size: int = 0  # bytes: skip smaller objects
    max_size: int = 0  # bytes: skip larger objects; 0 = only the API's limits
    incremental: bool = False  # `scan` is a nightly rescan by default (--full to override)
    max_attempts: int = 3  # audit attempts per image for retryable per-image failures
    batch_wait: float = 0.5  # seconds before a partial batch is sent anyway
    lease_stale_after: float = 60.0  # seconds without heartbeat before a lease is taken over
    progress_interval: float = 10.0  # seconds between progress log lines (not on a terminal)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySettings:
    attempts: int = 6  # tries per request, including the first
    deadline: float = 300.0  # seconds for all tries of one request
    wait_initial: float = 0.5  # first backoff ceiling, doubled each try (full jitter)
    wait_max: float = 30.0  # backoff ceiling
    throttle_patience: float = 21_600.0  # seconds one request may keep being throttled


@dataclass(frozen=True, slots=True, kw_only=True)
class FreezeSettings:
    """[audit.freeze]: the service freezes (makes private) an audited object whose scene score
    is at or above the threshold; 0 = off. Sent as <Conf><Freeze> (Object inputs only)."""

    porn_score: int = 0
    ads_score: int = 0
    illegal_score: int = 0
    terrorism_score: int = 0
    politics_score: int = 0
    abuse_score: int = 0
    teenager_score: int = 0

    def thresholds(self) -> dict[str, int]:
        """Scene -> threshold, the ones that are on (`PornScore` is sent for `Porn`)."""
        out = {}
        for scene in DETECT_TYPES:
            value = getattr(self, f"{scene.lower()}_score")
            if value:
                out[scene] = value
        return out


ACT_ACTIONS = ("private", "quarantine")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActSettings:
    qps: float = 50.0  # COS write requests per second for `act` (strict budget, no bursts)
    concurrency: int = 16  # COS requests in flight for `act`
    on_flagged: str = ""  # nightly: "private" | "quarantine" newly flagged objects; "" = off
    min_score: int = 0  # with on_flagged: only Result 1 verdicts scoring at least this
    quarantine_to: str = ""  # cos://bucket-appid/prefix/ for quarantine copies


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    path: str = DEFAULT_STORE_PATH  # SQLite file with the checkpoints and verdicts


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    cos: CosSettings = field(default_factory=CosSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    scan: ScanSettings = field(default_factory=ScanSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    freeze: FreezeSettings = field(default_factory=FreezeSettings)
    act: ActSettings = field(default_factory=ActSettings)
    credentials: Credentials | None = None


SECTIONS: dict[str, type[Any]] = {
    "cos": CosSettings,
    "audit": AuditSettings,
    "audit.freeze": FreezeSettings,
    "scan": ScanSettings,
    "retry": RetrySettings,
    "store": StoreSettings,
    "act": ActSettings,
}
#: Config field of each section (a dotted section is a TOML sub-table).
FIELDS = {name: name.rsplit(".", 1)[-1] for name in SECTIONS}

_COS_URL = re.compile(r"^cos://[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,}/(?:[^/].*/)?$")
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,}$")
#: DetectType scenes in the service's spelling and order (reference 3.1; the SDK's CiDetectType).
DETECT_TYPES = ("Porn", "Terrorism", "Politics", "Ads", "Illegal", "Abuse", "Teenager")
MAX_SCENES = len(DETECT_TYPES)


def detect_scenes(value: str) -> tuple[str, ...] | None:
    """`value` ("porn,ADS", "all", ...) as canonical scenes; None if a name is unknown."""
    names = {p.strip().lower() for p in value.split(",") if p.strip()}
    if "all" in names:
        return DETECT_TYPES
    known = {t.lower(): t for t in DETECT_TYPES}
    if names - set(known):
        return None
    return tuple(t for t in DETECT_TYPES if t.lower() in names)


Check = Callable[[Any], str | None]


def _at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be >= {low}"


def _between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _region(v: str) -> str | None:
    return None if _REGION.match(v) else "must look like ap-guangzhou"


def _bucket(v: str) -> str | None:
    if not v:
        return "is required (BucketName-APPID, e.g. examplebucket-1250000000)"
    if not _BUCKET.match(v):
        return "must be BucketName-APPID: lowercase letters, digits, '-', ending in -<appid>"
    return None


#: Keys whose value a problem never echoes (an endpoint may carry user:password@).
_NO_ECHO = frozenset({"cos.endpoint", "audit.endpoint"})


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


CHECKS: dict[str, Check] = {
    "cos.region": _region,
    "cos.bucket": _bucket,
    "cos.endpoint": _endpoint,
    "cos.page_size": _between(1, 1000),
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


_COERCE: dict[Any, Callable[[Any, bool], Any]] = {
    bool: _as_bool,
    int: _as_int,
    float: _as_float,
    str: _as_str,
    tuple[str, ...]: _as_strings,
}


def _coerce(raw: Any, kind: Any, from_text: bool) -> Any:
    """Return `raw` as `kind`, or raise ValueError with the reason."""
    return _COERCE[kind](raw, from_text)


def _section(
    name: str, cls: type[Any], values: Mapping[str, tuple[Any, bool]], problems: list[str]
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, (raw, from_text) in values.items():
        if key not in hints:  # never echo the value: it may be a secret put in the wrong place
            problems.append(f"{name}.{key}: unknown key")
            continue
        try:
            kwargs[key] = _coerce(raw, hints[key], from_text)
        except ValueError as exc:
            problems.append(f"{name}.{key}: {exc} (got {raw!r})")
    obj = cls(**kwargs)
    for f in dataclasses.fields(cls):
        check = CHECKS.get(f"{name}.{f.name}")
        value = getattr(obj, f.name)
        if check is not None and (reason := check(value)) is not None:
            shown = "" if f"{name}.{f.name}" in _NO_ECHO else f" (got {value!r})"
            problems.append(f"{name}.{f.name}: {reason}{shown}")
    return obj


def _read_file(path: Path | None, problems: list[str]) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"config file {str(path)!r} does not exist")
    except IsADirectoryError:
        problems.append(f"config file {str(path)!r} is a directory")
    except PermissionError:
        problems.append(f"config file {str(path)!r} is not readable")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"config file {str(path)!r} is not valid TOML: {exc}")
    except UnicodeDecodeError:
        problems.append(f"config file {str(path)!r} is not UTF-8 text")
    return {}


def _from_credentials_dir(environ: Mapping[str, str], var: str) -> str:
    """A secret from systemd's `LoadCredential=` (a file named like the variable, lower case,
    in $CREDENTIALS_DIRECTORY), when the variable itself is not set."""
    folder = environ.get("CREDENTIALS_DIRECTORY", "")
    if not folder:
        return ""
    try:
        return (Path(folder) / var.lower()).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _credentials(environ: Mapping[str, str], problems: list[str]) -> Credentials | None:
    def secret(var: str) -> str:
        return environ.get(var, "").strip() or _from_credentials_dir(environ, var)

    sid = secret(ENV_SECRET_ID)
    skey = secret(ENV_SECRET_KEY)
    token = secret(ENV_SESSION_TOKEN) or None
    if not sid and not skey:
        return None
    if not sid or not skey:
        missing = ENV_SECRET_ID if not sid else ENV_SECRET_KEY
        problems.append(f"credentials: {missing} is not set (both it and the other are needed)")
        return None
    return Credentials(sid, skey, token)


def load_config(
    path: Path | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
    *,
    require_credentials: bool = True,
    require_target: bool = True,
) -> Config:
    """Read `path` (optional), apply `environ` and then `overrides` ("section.key" -> value).

    Raises ConfigError listing every problem found.
    """
    problems: list[str] = []
    merged = _merge(_read_file(path, problems), environ, overrides or {}, problems)
    sections = {
        FIELDS[name]: _section(name, cls, merged[name], problems) for name, cls in SECTIONS.items()
    }
    if not require_target:  # e.g. `status`: only the store matters
        problems = [p for p in problems if not p.startswith("cos.bucket: is required")]
    creds = _credentials(environ, problems)
    if (
        creds is None
        and require_credentials
        and not any(p.startswith("credentials:") for p in problems)
    ):
        problems.append(f"credentials: set {ENV_SECRET_ID} and {ENV_SECRET_KEY} in the environment")
    if problems:
        raise ConfigError(problems)
    return Config(credentials=creds, **sections)


def _env_key(rest: str) -> tuple[str, str]:
    """(section, key) of an environment variable's name after the prefix, lower case:
    `audit_freeze_porn_score` names [audit.freeze] porn_score, `cos_bucket` [cos] bucket."""
    if rest.startswith("audit_freeze_"):
        return "audit.freeze", rest.removeprefix("audit_freeze_")
    name, _, key = rest.partition("_")
    return name, key


def describe_config(
    config: Config, path: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> list[tuple[str, Any, str]]:
    """(section.key, effective value, where it came from: flag, env, file or default) for
    every key of a loaded `config`, and the credentials, their secrets redacted."""
    problems: list[str] = []
    data = _read_file(path, problems)
    out: list[tuple[str, Any, str]] = []
    for name, cls in SECTIONS.items():
        section = getattr(config, FIELDS[name])
        table = _file_table(data, name)
        for f in dataclasses.fields(cls):
            dotted = f"{name}.{f.name}"
            env = ENV_PREFIX + dotted.replace(".", "_").upper()
            source = "default"
            if dotted in overrides:
                source = "flag"
            elif env in environ:
                source = f"env {env}"
            elif f.name in table:
                source = "file"
            out.append((dotted, getattr(section, f.name), source))
    creds = config.credentials
    for key, var, value in (
        ("credentials.secret_id", ENV_SECRET_ID, creds.secret_id[:4] + "****" if creds else None),
        ("credentials.secret_key", ENV_SECRET_KEY, "**** (set)" if creds else None),
        (
            "credentials.session_token",
            ENV_SESSION_TOKEN,
            "**** (set)" if creds and creds.token else None,
        ),
    ):
        out.append((key, value, f"env {var}" if value else "not set"))
    return out


def _file_table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table: Any = data
    for part in name.split("."):
        table = table.get(part, {}) if isinstance(table, dict) else {}
    return table if isinstance(table, dict) else {}


def _merge(
    data: Mapping[str, Any],
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
    problems: list[str],
) -> dict[str, dict[str, tuple[Any, bool]]]:
    """file < environment < flags, per section: key -> (value, came-from-text)."""
    merged: dict[str, dict[str, tuple[Any, bool]]] = {name: {} for name in SECTIONS}
    for name, table in data.items():
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section (expected one of {', '.join(SECTIONS)})")
        elif not isinstance(table, dict):
            problems.append(f"{name}: must be a [{name}] table (got {table!r})")
        else:
            for key, value in table.items():
                sub = f"{name}.{key}"
                if sub in SECTIONS and isinstance(value, dict):  # [audit.freeze]
                    merged[sub].update({k: (v, False) for k, v in value.items()})
                else:
                    merged[name][key] = (value, False)
    for var, value in environ.items():
        if var.startswith(ENV_PREFIX):
            name, key = _env_key(var[len(ENV_PREFIX) :].lower())
            if name in SECTIONS:
                merged[name][key] = (value, True)
    for dotted, value in overrides.items():
        name, _, key = dotted.partition(".")
        merged[name][key] = (value, False)
    return merged
