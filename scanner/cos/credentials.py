"""The keys every request is signed with, from where `[credentials] provider` says, renewed
ahead of expiry (reference 13).

`env` and `profile` give a long-term pair (read by `scanner.config`). `cvm-role` reads the
instance's CAM role from the metadata service (13.1); `tke-oidc` trades the pod's web identity
token for a role's keys with STS `AssumeRoleWithWebIdentity`, unsigned (13.3). `auto` takes the
common SDK's order: environment, profile file, CVM role, TKE OIDC, and keeps the first that
answers.

Temporary keys are renewed in the background before they expire: at the SDK's 300 s margin,
or half their lifetime when that is shorter. A failed renewal is logged and tried again. A
request refused for its credentials calls `renewed()`: if newer keys are (or can now be) had,
it is sent once more with them; the refusal stands only when the keys it used are still the
newest, and once they have expired with no others to be had, `CredentialsUnavailable`
(exit 77) ends the command. Keys are read as one triple (`keys()`), never id and key apart.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aiohttp
import anyio

from scanner.config import Config, Credentials, CredentialSettings, Identity, TkeIdentity
from scanner.errors import AuthError, ConfigError

log = logging.getLogger(__name__)

RENEW_MARGIN = 300.0  # the SDK's margin (CVMRoleCredential._expired_timeout)
MIN_WAIT = 1.0  # seconds between renewals, at least
RETRY_WAITS = (1.0, 2.0, 5.0, 10.0, 30.0)  # after failed renewals
FETCH_TIMEOUT = 10.0  # seconds for one metadata or STS call
PROBE_TIMEOUT = 2.0  # auto: a host that is not a CVM must not hold up the start
STS_VERSION = "2018-08-13"


class CredentialsUnavailable(AuthError):
    """No usable keys can be had: the provider failed and the last keys (if any) expired."""

    def __init__(self, message: str) -> None:
        super().__init__("credentials", message)


@dataclass(frozen=True, slots=True)
class Issued:
    """One pair as handed out, and when it expires (unix seconds; None: long-term)."""

    keys: Credentials
    expires: float | None = None


Fetch = Callable[[aiohttp.ClientSession], Awaitable[Issued]]


class Provider:
    """The current keys of one source; `open()` takes the first, `keep_fresh()` renews."""

    def __init__(
        self,
        source: str,
        *,
        issued: Issued | None = None,
        fetch: Fetch | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.source = source  # where the keys come from, for logs and `config show`
        self._issued = issued
        self._fetch = fetch
        self._wall = wall
        self._session: aiohttp.ClientSession | None = None
        self._lock = anyio.Lock()
        self._fetched_at = 0.0
        self.renewals = 0

    @classmethod
    def fixed(cls, keys: Credentials, source: str = "given") -> Provider:
        return cls(source, issued=Issued(keys))

    @property
    def renewable(self) -> bool:
        return self._fetch is not None

    @property
    def expires(self) -> float | None:
        return self._issued.expires if self._issued else None

    def keys(self) -> Credentials:
        """The newest keys: id, key and token as one triple."""
        if self._issued is None:
            raise RuntimeError("credentials provider is not open")
        return self._issued.keys

    async def open(self, session: aiohttp.ClientSession) -> None:
        """Take the first keys (raises CredentialsUnavailable or, for `auto` with nothing
        configured anywhere, ConfigError)."""
        self._session = session
        if self._issued is None:
            await self._refresh()

    async def _refresh(self) -> None:
        assert self._fetch is not None, "a fixed pair is never refreshed"
        assert self._session is not None, "open() first"
        issued = await self._fetch(self._session)
        changed = self._issued is not None and issued.keys != self._issued.keys
        self._issued, self._fetched_at = issued, self._wall()
        if changed:
            self.renewals += 1

    def use(self, source: str, fetch: Fetch) -> None:
        """From now on, renew from `fetch` (auto: the source that answered first)."""
        self.source, self._fetch = source, fetch

    def renew_at(self) -> float:
        """When the keys are renewed: the SDK's 300 s before expiry, or half their lifetime
        when that is shorter (20 s keys are renewed 10 s before they expire)."""
        expires = self.expires
        if expires is None:
            return float("inf")
        lifetime = max(0.0, expires - self._fetched_at)
        return expires - min(RENEW_MARGIN, lifetime / 2)

    def expired(self) -> bool:
        expires = self.expires
        return expires is not None and self._wall() >= expires

    async def keep_fresh(self) -> None:
        """Renew ahead of expiry until cancelled; failures are logged and tried again."""
        if not self.renewable:
            return
        failures = 0
        while True:
            wait = RETRY_WAITS[min(failures, len(RETRY_WAITS)) - 1] if failures else 0.0
            await anyio.sleep(max(MIN_WAIT, wait, self.renew_at() - self._wall()))
            try:
                async with self._lock:
                    await self._refresh()
                failures = 0
            except Exception as exc:  # a renewal never ends the run by itself
                failures += 1
                left = (self.expires or 0) - self._wall()
                log.warning(
                    "credentials: renewal from %s failed (%s); trying again, %s",
                    self.source, exc.message if isinstance(exc, AuthError) else _reason(exc),
                    f"the current keys expire in {left:.0f}s" if left > 0 else "they have expired",
                )  # fmt: skip

    async def renewed(self, used: Credentials, refusal: AuthError) -> bool:
        """After `refusal` of a request signed with `used`: True when newer keys are now
        current (send it once more). Raises CredentialsUnavailable when `used` expired and
        no other keys can be had."""
        if not self.renewable:
            return False
        async with self._lock:
            if self.keys() != used:
                return True
            try:
                await self._refresh()
            except (CredentialsUnavailable, ConfigError) as exc:
                if self.expired():
                    raise CredentialsUnavailable(
                        f"the keys from {self.source} expired at {when(self.expires)} and no "
                        f"others can be had: {exc}"
                    ) from refusal
                log.warning("credentials: renewal after %s failed: %s", refusal.code, exc)
                return False
            if self.keys() != used:
                log.info("credentials: renewed from %s after %s", self.source, refusal.code)
                return True
            if self.expired():
                raise CredentialsUnavailable(
                    f"{self.source} still hands out keys that expired at {when(self.expires)}"
                ) from refusal
            return False


def when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _get(session: aiohttp.ClientSession, url: str, timeout: float) -> str:  # noqa: ASYNC109
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as resp:
            body = await resp.content.read(64 * 1024)
            if resp.status != 200:
                raise CredentialsUnavailable(f"{url} answered HTTP {resp.status}")
            return body.decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CredentialsUnavailable(f"cannot reach {url}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return str(exc.os_error.strerror or exc.os_error)
    return f"{type(exc).__name__}: {exc}"


def _issued(data: object, where: str, wall: Callable[[], float]) -> Issued:
    """The keys of a metadata answer or an STS `Response` (the same field names)."""
    if not isinstance(data, dict):
        raise CredentialsUnavailable(f"{where}: not a JSON object")
    creds = data.get("Credentials", data)
    try:
        keys = Credentials(
            str(creds["TmpSecretId"]), str(creds["TmpSecretKey"]), str(creds["Token"])
        )
        expires = float(data["ExpiredTime"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CredentialsUnavailable(f"{where}: no {exc} in the answer") from None
    if expires <= wall():
        raise CredentialsUnavailable(f"{where}: handed out keys that expired at {when(expires)}")
    return Issued(keys, expires)


def cvm_role(settings: CredentialSettings, *, probe: bool = False) -> Fetch:
    """The instance role's keys from the metadata service (reference 13.1)."""
    base = settings.metadata_endpoint + "cam/security-credentials/"
    timeout = PROBE_TIMEOUT if probe else FETCH_TIMEOUT
    role = settings.role

    async def fetch(session: aiohttp.ClientSession) -> Issued:
        nonlocal role
        if not role:
            listed = (await _get(session, base, timeout)).split()
            if not listed:
                raise CredentialsUnavailable(f"{base}: the instance has no CAM role")
            role = listed[0]
        text = await _get(session, base + quote(role, safe=""), timeout)
        try:
            data = json.loads(text)
        except ValueError:
            raise CredentialsUnavailable(f"{base}{role}: not JSON") from None
        if not isinstance(data, dict) or data.get("Code") != "Success":
            code = data.get("Code") if isinstance(data, dict) else None
            raise CredentialsUnavailable(f"{base}{role}: Code {code!r}")
        return _issued(data, f"{base}{role}", time.time)

    return fetch


def tke_oidc(settings: CredentialSettings, tke: TkeIdentity) -> Fetch:
    """A role's keys for the pod's web identity token (reference 13.3): STS
    `AssumeRoleWithWebIdentity`, unsigned (`Authorization: SKIP`), the token file re-read on
    every call."""
    url = settings.sts_endpoint
    host = urlsplit(url).netloc

    async def fetch(session: aiohttp.ClientSession) -> Issued:
        try:
            token = await anyio.Path(tke.token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsUnavailable(
                f"TKE_WEB_IDENTITY_TOKEN_FILE {tke.token_file!r}: {exc}"
            ) from None
        now = time.time()
        body = json.dumps({
            "ProviderId": tke.provider_id, "WebIdentityToken": token, "RoleArn": tke.role_arn,
            "RoleSessionName": f"cos-scanner-{int(now * 1e6)}",
            "DurationSeconds": settings.duration_seconds,
        }).encode()  # fmt: skip
        headers = {
            "Host": host, "Authorization": "SKIP", "Content-Type": "application/json",
            "X-TC-Action": "AssumeRoleWithWebIdentity", "X-TC-Version": STS_VERSION,
            "X-TC-Region": tke.region, "X-TC-Timestamp": str(int(now)),
        }  # fmt: skip
        try:
            async with session.post(
                url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT), allow_redirects=False,
            ) as resp:  # fmt: skip
                text = await resp.content.read(64 * 1024)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CredentialsUnavailable(f"cannot reach {url}: {_reason(exc)}") from exc
        try:
            answer = json.loads(text)["Response"]
        except (ValueError, KeyError, TypeError):
            raise CredentialsUnavailable(f"{url}: HTTP {resp.status}, not an API answer") from None
        if isinstance(answer, dict) and isinstance(error := answer.get("Error"), dict):
            raise CredentialsUnavailable(
                f"{url} AssumeRoleWithWebIdentity: {error.get('Code')}: {error.get('Message')}"
            )
        return _issued(answer, url, time.time)

    return fetch


def provider_of(config: Config) -> Provider:
    """The provider of a loaded configuration."""
    return provider_for(config.credentials, config.identity)


def provider_for(settings: CredentialSettings, identity: Identity) -> Provider:
    """The provider `settings` names, with what the configuration found (`identity`)."""
    kind = settings.provider
    if identity.keys is not None and kind in ("auto", "env", "profile"):
        return Provider.fixed(identity.keys, identity.keys_from)
    if kind == "cvm-role":
        return Provider(f"cvm-role via {settings.metadata_endpoint}", fetch=cvm_role(settings))
    if kind == "tke-oidc":
        if identity.tke is None:
            raise ConfigError("credentials: provider tke-oidc: the TKE_* variables are not set")
        return Provider(f"tke-oidc {identity.tke.role_arn}", fetch=tke_oidc(settings, identity.tke))
    if kind != "auto":
        raise ConfigError(f"credentials: provider {kind}: no keys found")
    return _auto(settings, identity)


def _auto(settings: CredentialSettings, identity: Identity) -> Provider:
    """Neither environment nor profile file: the CVM role, then the TKE identity; the first
    that answers is kept."""
    provider = Provider("auto")
    probe = cvm_role(settings, probe=True)
    renew = cvm_role(settings)

    async def first(session: aiohttp.ClientSession) -> Issued:
        tried = [
            "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY are not set",
            "no profile file (~/.tencentcloud/credentials, /etc/tencentcloud/credentials)",
        ]
        try:
            issued = await probe(session)
            provider.use(f"cvm-role via {settings.metadata_endpoint}", renew)
            return issued
        except CredentialsUnavailable as exc:
            tried.append(f"no CVM role ({exc.message})")
        if identity.tke is None:
            tried.append("no TKE identity (TKE_REGION and the other TKE_* variables not set)")
            raise ConfigError(["credentials: none found:", *(f"  {t}" for t in tried)])
        fetch = tke_oidc(settings, identity.tke)
        provider.use(f"tke-oidc {identity.tke.role_arn}", fetch)
        return await fetch(session)

    provider.use("auto", first)
    return provider


async def describe(settings: CredentialSettings, identity: Identity) -> tuple[str, str]:
    """(source, expiry) of the keys the provider hands out now, fetching them if it must;
    never a key. A failure is the source's text."""
    try:
        provider = provider_for(settings, identity)
        async with aiohttp.ClientSession() as session:
            await provider.open(session)
    except (CredentialsUnavailable, ConfigError) as exc:
        return f"unavailable: {exc}", ""
    expires = provider.expires
    if expires is None and provider.keys().token:
        return provider.source, "unknown (a session token given as it is: not renewed)"
    if expires is None:
        return provider.source, "never (long-term keys)"
    left = expires - time.time()
    return provider.source, f"{when(expires)} (in {left:.0f}s, renewed before then)"
