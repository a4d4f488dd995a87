"""Where temporary keys come from (reference 13): the CVM metadata service and STS.

- `GET /latest/meta-data/cam/security-credentials/` names the instance's role (plain text);
  `GET .../<role>` hands out its keys as JSON (`Code`, `TmpSecretId`, `TmpSecretKey`,
  `Token`, `ExpiredTime`, `Expiration`). The same keys are served until less than half their
  lifetime is left, then new ones (the old stay valid until they expire).
- `POST /` with `X-TC-Action: AssumeRole` (TC3-signed with a long-term key, service `sts`) or
  `AssumeRoleWithWebIdentity` (unsigned, `Authorization: SKIP`; the web identity token must be
  the one the emulator was given) answers `{"Response": {"Credentials": {Token, TmpSecretId,
  TmpSecretKey}, "ExpiredTime", "Expiration", "RequestId"}}`.

Every pair lives `Identity.lifetime` seconds at most (`DurationSeconds` when shorter). COS,
CI and IMS refuse a pair whose token has expired (`ExpiredToken`, `AuthFailure.TokenFailure`),
and `Stats.expired_tokens` counts those refusals.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from scanner.emulator.ims import check_tc3
from scanner.emulator.state import EmulatorState, KeyPair
from scanner.emulator.wire import Refusal, request_id

METADATA = "/latest/meta-data/"
ROLES = METADATA + "cam/security-credentials/"
ACTIONS = ("AssumeRole", "AssumeRoleWithWebIdentity")
VERSION = "2018-08-13"
MAX_DURATION = 43_200
_ROLE_ARN = re.compile(r"^qcs::cam::uin/\d+:(?:roleName/[\w+=,.@-]+|role/\d+)$")
_SESSION = re.compile(r"^[\w+=,.@-]{2,128}$")


def is_metadata(request: web.Request) -> bool:
    """A metadata path on a host that is not a bucket's (an object may have that key)."""
    host = request.headers.get("Host", "")
    return (
        request.method == "GET"
        and request.path.startswith(METADATA)
        and ".myqcloud.com" not in host
    )


def is_sts(request: web.Request) -> bool:
    return request.method == "POST" and request.headers.get("X-TC-Action", "") in ACTIONS


def _issue(state: EmulatorState, how: str, duration: float) -> tuple[str, KeyPair]:
    """A new temporary pair, valid in COS, CI and IMS until it expires."""
    now = state.now()
    for sid in [
        s for s, p in state.keys.items() if p.token_expires and p.token_expires < now - 3600
    ]:
        del state.keys[sid]  # expired an hour ago: no client holds it any more
    sid = "AKIDtmp" + secrets.token_hex(14)
    lifetime = min(duration, state.identity.lifetime)
    pair = KeyPair(
        secrets.token_hex(16),
        token=secrets.token_urlsafe(48),
        token_expires=float(int(now + lifetime)),
    )
    state.keys[sid] = pair
    state.stats.credentials_issued[how] += 1
    return sid, pair


def _fields(sid: str, pair: KeyPair) -> dict[str, Any]:
    expires = int(pair.token_expires or 0)
    return {
        "TmpSecretId": sid,
        "TmpSecretKey": pair.secret_key,
        "Token": pair.token,
        "ExpiredTime": expires,
        "Expiration": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def metadata(state: EmulatorState, request: web.Request) -> web.Response:
    """The instance role's name, or its current keys."""
    state.stats.requests["metadata"] += 1
    role = state.identity.role
    if request.path == ROLES:
        return web.Response(text=role)
    if not request.path.startswith(ROLES) or request.path[len(ROLES) :] != role:
        return web.Response(status=404, text="404 - Not Found")
    current = state.keys.get(state.identity.served)
    now = state.now()
    if current is None or (current.token_expires or 0) - now <= state.identity.lifetime / 2:
        state.identity.served, current = _issue(state, "metadata", state.identity.lifetime)
    body = {"Code": "Success", **_fields(state.identity.served, current)}
    return web.Response(text=json.dumps(body), content_type="application/json")


def _answer(body: dict[str, Any]) -> web.Response:
    data = json.dumps({"Response": {**body, "RequestId": request_id()}})
    return web.Response(body=data.encode(), headers={"Content-Type": "application/json"})


def _error(code: str, message: str) -> web.Response:
    return _answer({"Error": {"Code": code, "Message": message}})


async def handle(state: EmulatorState, request: web.Request) -> web.Response:
    """STS AssumeRole / AssumeRoleWithWebIdentity."""
    action = request.headers["X-TC-Action"]
    state.stats.requests[f"sts {action}"] += 1
    body = await request.read()
    try:
        if action == "AssumeRole":
            check_tc3(state, request, body, state.now(), service="sts")
        elif request.headers.get("Authorization") != "SKIP":
            raise Refusal(200, "AuthFailure.InvalidAuthorization", "send Authorization: SKIP")
        params = json.loads(body or b"{}")
        if not isinstance(params, dict):
            raise ValueError("not an object")
    except Refusal as exc:
        return _error(exc.code, exc.message)
    except ValueError as exc:
        return _error("InvalidParameter", f"the body is not JSON: {exc}")
    if (refused := _invalid(state, request, action, params)) is not None:
        return _error(*refused)
    sid, pair = _issue(state, action, params.get("DurationSeconds", 7200))
    fields = _fields(sid, pair)
    creds = {k: fields.pop(k) for k in ("Token", "TmpSecretId", "TmpSecretKey")}
    return _answer({"Credentials": creds, **fields})


def _invalid(
    state: EmulatorState, request: web.Request, action: str, params: dict[str, Any]
) -> tuple[str, str] | None:
    """(code, message) of a request STS refuses, as its error codes name them."""
    if request.headers.get("X-TC-Version") != VERSION:
        return "InvalidParameter", f"X-TC-Version must be {VERSION}"
    if not _ROLE_ARN.match(str(params.get("RoleArn", ""))):
        return "InvalidParameter.RoleArn", "RoleArn is not a role's ARN"
    if not _SESSION.match(str(params.get("RoleSessionName", ""))):
        return "InvalidParameter", "RoleSessionName must be 2-128 of [\\w+=,.@-]"
    duration = params.get("DurationSeconds", 7200)
    if not isinstance(duration, int) or not 0 < duration <= MAX_DURATION:
        return "InvalidParameter.OverTimeError", "DurationSeconds is out of range"
    if action == "AssumeRoleWithWebIdentity":
        if not params.get("ProviderId"):
            return "InvalidParameter", "ProviderId is required"
        if params.get("WebIdentityToken") != state.identity.web_identity_token:
            return "InvalidParameter.WebIdentityTokenError", "the token is invalid"
    return None
