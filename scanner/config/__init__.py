"""Configuration: a TOML file, environment variables and flags, validated all at once.

Precedence: flag > environment > file > default. Secrets never come from the config file: the
environment (`TENCENTCLOUD_SECRET_ID`, `TENCENTCLOUD_SECRET_KEY`, `TENCENTCLOUD_SESSION_TOKEN`),
systemd credentials ($CREDENTIALS_DIRECTORY) or the common SDK's profile file give a long-term
pair; `[credentials] provider` may instead name a CVM role or a TKE identity (the `TKE_*`
variables are read here), whose keys `scanner.cos.credentials` fetches and renews. Any other
key can be set from the environment as `COS_SCANNER_<SECTION>_<KEY>` (e.g.
`COS_SCANNER_COS_BUCKET`). Every problem is collected and reported in one ConfigError, naming
the key and the value. Unknown keys are errors. This is the only module that reads the config
file or the environment: `settings` holds the sections' dataclasses and defaults, `checks`
what a valid value is; this module loads, merges and describes them.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import stat
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scanner.config.checks import CHECKS, NO_ECHO, coerce, region_warning
from scanner.config.settings import (
    ACT_ACTIONS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_QPS,
    DEFAULT_REGION,
    DEFAULT_STORE_PATH,
    DETECT_TYPES,
    ENV_PREFIX,
    ENV_SECRET_ID,
    ENV_SECRET_KEY,
    ENV_SESSION_TOKEN,
    FIELDS,
    MAX_BATCH_SIZE,
    MAX_SCENES,
    SECTIONS,
    TKE_VARS,
    ActSettings,
    AuditSettings,
    Config,
    CosSettings,
    Credentials,
    CredentialSettings,
    FreezeSettings,
    Identity,
    ImsSettings,
    NotifySettings,
    RetrySettings,
    ReviewSettings,
    ScanSettings,
    StoreSettings,
    TkeIdentity,
    Webhook,
    detect_scenes,
)

__all__ = [
    "ACT_ACTIONS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_QPS",
    "DEFAULT_REGION",
    "DEFAULT_STORE_PATH",
    "DETECT_TYPES",
    "ENV_PREFIX",
    "ENV_SECRET_ID",
    "ENV_SECRET_KEY",
    "ENV_SESSION_TOKEN",
    "FIELDS",
    "MAX_BATCH_SIZE",
    "MAX_SCENES",
    "SECTIONS",
    "ActSettings",
    "AuditSettings",
    "Config",
    "CosSettings",
    "CredentialSettings",
    "Credentials",
    "FreezeSettings",
    "Identity",
    "ImsSettings",
    "NotifySettings",
    "RetrySettings",
    "ReviewSettings",
    "ScanSettings",
    "StoreSettings",
    "TkeIdentity",
    "Webhook",
    "describe_config",
    "detect_scenes",
    "load_config",
    "profile_paths",
]
from scanner.errors import ConfigError, echo

log = logging.getLogger(__name__)


def _section(
    name: str, cls: type[Any], values: Mapping[str, tuple[Any, bool]], problems: list[str]
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, (raw, from_text) in values.items():
        if key not in hints:  # never echo the value: it may be a secret put in the wrong place
            where = f" (environment variable {_env_name(name, key)})" if from_text else ""
            problems.append(f"{name}.{key}: unknown key{where}")
            continue
        try:
            kwargs[key] = coerce(raw, hints[key], from_text)
        except ValueError as exc:
            problems.append(f"{name}.{key}: {exc} (got {echo(raw)})")
    obj = cls(**kwargs)
    for f in dataclasses.fields(cls):
        check = CHECKS.get(f"{name}.{f.name}")
        value = getattr(obj, f.name)
        if check is not None and (reason := check(value)) is not None:
            shown = "" if f"{name}.{f.name}" in NO_ECHO else f" (got {echo(value)})"
            problems.append(f"{name}.{f.name}: {reason}{shown}")
    return obj


#: A config file larger than this is not one (a log, a disk image, /dev/zero).
MAX_CONFIG_BYTES = 1024 * 1024


def _read_file(path: Path | None, problems: list[str]) -> dict[str, Any]:
    if path is None:
        return {}
    try:  # looked at before it is opened: a FIFO would hang the open, /dev/zero the read
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"config file {str(path)[:80]!r} is not a regular file")
            return {}
        if info.st_size > MAX_CONFIG_BYTES:
            problems.append(f"config file {str(path)[:80]!r} is larger than 1 MiB")
            return {}
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


def _env_keys(environ: Mapping[str, str], problems: list[str]) -> Credentials | None:
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


def profile_paths(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """Where the common SDK looks for its profile file, in its order (reference 13.4)."""
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".tencentcloud" / "credentials", Path("/etc/tencentcloud/credentials")


def _profile_keys(environ: Mapping[str, str], problems: list[str]) -> tuple[Credentials, str]:
    """The first profile file's `[default]` secret_id and secret_key, and its path; none
    when no file exists (a file that exists but cannot be used is a problem)."""
    for path in profile_paths(environ):
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            problems.append(f"credentials: profile file {str(path)!r} is unreadable: {exc}")
            return Credentials("", ""), str(path)
        sid = parser.get("default", "secret_id", fallback="").strip()
        skey = parser.get("default", "secret_key", fallback="").strip()
        if not sid or not skey:
            problems.append(
                f"credentials: profile file {str(path)!r} has no [default] secret_id and secret_key"
            )
        return Credentials(sid, skey), str(path)
    return Credentials("", ""), ""


def _tke(environ: Mapping[str, str]) -> tuple[TkeIdentity | None, str]:
    """The TKE variables, or None and the first one missing."""
    values = [environ.get(var, "").strip() for var in TKE_VARS]
    for var, value in zip(TKE_VARS, values, strict=True):
        if not value:
            return None, var
    return TkeIdentity(*values), ""


def _identity(
    settings: CredentialSettings, environ: Mapping[str, str], problems: list[str], required: bool
) -> Identity:
    """What `settings.provider` needs from the environment and files, read now; with
    `required`, a provider that cannot work without it is a problem."""
    kind = settings.provider
    start = len(problems)
    keys = _env_keys(environ, problems) if kind in ("auto", "env") else None
    if keys is not None:
        return Identity(keys=keys, keys_from=f"env {ENV_SECRET_ID}")
    if kind in ("auto", "profile") and len(problems) == start:
        found, where = _profile_keys(environ, problems)
        if where:
            return Identity(keys=found if found.secret_id else None, keys_from=f"profile {where}")
    tke, missing = _tke(environ)
    if not required or len(problems) > start:
        return Identity(tke=tke)
    if kind == "env":
        problems.append(f"credentials: set {ENV_SECRET_ID} and {ENV_SECRET_KEY} in the environment")
    elif kind == "profile":
        shown = " or ".join(str(p) for p in profile_paths(environ))
        problems.append(f"credentials: provider profile: no profile file ({shown})")
    elif kind == "tke-oidc" and tke is None:
        problems.append(f"credentials: provider tke-oidc: {missing} is not set")
    return Identity(tke=tke)


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
    identity = _identity(sections["credentials"], environ, problems, require_credentials)
    if (
        problems
        and require_credentials
        and sections["credentials"].provider == "auto"
        and identity == Identity()
        and not any(p.startswith("credentials:") for p in problems)
    ):
        # failing anyway: say now what the next run would find missing (auto would still ask
        # the CVM metadata service, which no configuration can tell about)
        problems.append(
            f"credentials: none in the environment ({ENV_SECRET_ID}, {ENV_SECRET_KEY}) or a "
            "profile file, and no TKE identity: set them, or run on a CVM with a CAM role"
        )
    if problems:
        raise ConfigError(problems)
    config = Config(identity=identity, **sections)
    if require_target and config.cos.bucket and (warning := region_warning(config.cos.region)):
        log.warning("%s", warning)
    return config


#: Variables with the prefix that are not settings.
_ENV_OTHERS = frozenset({ENV_PREFIX + "CONFIG"})


def _env_name(section: str, key: str) -> str:
    return ENV_PREFIX + f"{section}_{key}".replace(".", "_").upper()


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
            env = _env_name(*dotted.split(".", 1))
            source = "default"
            if dotted in overrides:
                source = "flag"
            elif env in environ:
                source = f"env {env}"
            elif f.name in table:
                source = "file"
            value = getattr(section, f.name)
            if dotted == "notify.webhooks":  # their URLs hold keys: the format and host only
                value = [repr(w) for w in value]
            out.append((dotted, value, source))
    keys = config.identity.keys
    out.append(
        ("credentials.keys", "**** (set)" if keys else None, config.identity.keys_from or "not set")
    )
    if keys is not None:
        token = "**** (set)" if keys.token else None
        out.append(
            ("credentials.session_token", token, f"env {ENV_SESSION_TOKEN}" if token else "not set")
        )
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
            problems.append(f"{name}: must be a [{name}] table (got {echo(table)})")
        else:
            for key, value in table.items():
                sub = f"{name}.{key}"
                if sub in SECTIONS and isinstance(value, dict):  # [audit.freeze]
                    merged[sub].update({k: (v, False) for k, v in value.items()})
                else:
                    merged[name][key] = (value, False)
    for var, value in environ.items():
        if var.startswith(ENV_PREFIX) and var not in _ENV_OTHERS:
            name, key = _env_key(var[len(ENV_PREFIX) :].lower())
            if name in SECTIONS:
                merged[name][key] = (value, True)
            else:  # a typo would otherwise be a setting silently not applied
                problems.append(
                    f"environment variable {echo(var)}: no such setting (the form is "
                    f"{ENV_PREFIX}<SECTION>_<KEY>, sections {', '.join(SECTIONS)})"
                )
    for dotted, value in overrides.items():
        name, _, key = dotted.partition(".")
        merged[name][key] = (value, False)
    return merged
