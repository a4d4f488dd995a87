"""The review page's doors: who may ask, from where, with what.

In the Jupyter pattern: the server prints a URL with a random token; the first request with
`?token=` gets a session cookie and a redirect to the same path without it (never off-site);
every other request needs the cookie (403 otherwise). The cookie holds a session id derived
from the token (HMAC-SHA256), not the token, and is named after the server's port: cookies
ignore ports, so two review pages on one machine would otherwise log each other out, and every
other service on 127.0.0.1 would receive it. The `Host` header must name this server (no DNS
rebinding): a loopback name, the address served, the address the connection arrived at (with
`--host 0.0.0.0`, each of the machine's addresses), the machine's name, or the `--public-url`
a reverse proxy serves it under. State-changing requests are POSTs whose `Origin` is this
server, and every answer carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

COOKIE_PREFIX = "cos_scanner_review_"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    target: str  # the scanned target whose verdicts are reviewed
    reviewer: str
    token: str
    host: str = "127.0.0.1"  # the address served (besides the loopback names)
    public_url: str = ""  # the origin a reverse proxy serves the page under ("" = none)
    report_badcase: bool = False  # decisions that contradict CI are sent to it (feedback.py)
    claim_seconds: float = 600.0  # cards a page shows are held for it this long ([review])

    @property
    def session(self) -> str:
        """The cookie's value: derived from the token, so the token never sits in a cookie."""
        digest = hmac.new(self.token.encode(), b"cos-scanner review session", hashlib.sha256)
        return digest.hexdigest()


SETTINGS = web.AppKey("settings", ReviewSettings)


def cookie_name(port: int) -> str:
    return f"{COOKIE_PREFIX}{port}"


def _port(request: web.Request) -> int:
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sock[1]) if sock else 0


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _allowed_hosts(s: ReviewSettings, request: web.Request) -> set[str]:
    """Host values that name this server (a DNS-rebound name is none of these)."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    port = _port(request)
    names = {"127.0.0.1", "localhost", "[::1]"}
    if s.host not in WILDCARDS:
        names.add(_bracketed(s.host))
    else:  # every address of the machine: the one this connection came in on, and its names
        names |= {_bracketed(str(sock[0]).removeprefix("::ffff:"))} if sock else set()
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    allowed = {f"{n}:{port}" for n in names}
    if s.public_url:
        allowed.add(urlsplit(s.public_url).netloc.lower())
    return allowed


def _origins(s: ReviewSettings, request: web.Request) -> set[str]:
    mine = {f"http://{request.host}"}
    if s.public_url:
        parts = urlsplit(s.public_url)
        mine.add(f"{parts.scheme}://{parts.netloc}")
    return mine


def _same_site_path(request: web.Request) -> str:
    """Where the token's redirect goes: this request's path on this server, never another
    site (`//evil.example/` and `/\\evil.example` are read as other hosts by browsers)."""
    path = request.path
    if not path.startswith("/") or path.startswith(("//", "/\\")):
        path = "/"
    rest = {k: v for k, v in request.query.items() if k != "token"}
    return path + ("?" + urlencode(rest) if rest else "")


def forbidden(text: str) -> web.StreamResponse:
    return secure(web.Response(status=403, text=f"forbidden: {text}\n"))


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    s = request.app[SETTINGS]
    if request.host.lower() not in _allowed_hosts(s, request):
        return forbidden("unknown Host")
    name = cookie_name(_port(request))
    token = request.query.get("token")
    if token is not None and hmac.compare_digest(token.encode(), s.token.encode()):
        found = web.Response(status=302, headers={"Location": _same_site_path(request)})
        found.set_cookie(
            name, s.session, httponly=True, samesite="Strict", path="/",
            secure=s.public_url.startswith("https://"),
        )  # fmt: skip
        return secure(found)
    if not hmac.compare_digest(request.cookies.get(name, "").encode(), s.session.encode()):
        return forbidden("open the URL with the token that cos-scanner review printed")
    if request.method != "GET":
        if request.method != "POST" or request.headers.get("Origin") not in _origins(s, request):
            return forbidden("cross-origin request")
    try:
        return secure(await handler(request))
    except web.HTTPException as exc:  # a 400 or 404 a handler raised: with the same headers
        return secure(web.Response(status=exc.status, text=exc.text, headers=exc.headers))


def secure(resp: web.StreamResponse) -> web.StreamResponse:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp
