"""`cos-scanner review`: a local web page where people look at flagged images and decide.

Security, in the Jupyter pattern: the server binds 127.0.0.1 unless told otherwise and prints a
URL with a random token; the first request with `?token=` sets an HttpOnly, SameSite=Strict
cookie and redirects to the URL without it; every other request needs the cookie (403
otherwise). The `Host` header must name this server (no DNS rebinding), state-changing
requests are POSTs whose `Origin` is this server, and every answer carries a strict
Content-Security-Policy (scripts and styles only from this server, no inline code), so a
key like `<img src=x onerror=...>` is only ever text (the page sets textContent, never HTML).

The page is static files in `static/` (no build step); it reads `/api/*` as JSON. Decisions
are written at once, each in one short transaction (`Store.decide`).
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import anyio
from aiohttp import web

from scanner.audit.raw import raw_to_dict
from scanner.review.thumbs import Thumbs
from scanner.store import DECISIONS, Cursor, QueueFilter, Store

COOKIE = "cos_scanner_review"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
BANDS = {"sensitive": (91, 100), "suspected": (61, 90), "normal": (0, 60)}


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    target: str  # the scanned target whose verdicts are reviewed
    reviewer: str
    token: str
    host: str = "127.0.0.1"  # the address served (besides the loopback names)


STORE = web.AppKey("store", Store)
SETTINGS = web.AppKey("settings", ReviewSettings)
THUMBS = web.AppKey("thumbs", Thumbs)


def _allowed_hosts(s: ReviewSettings, request: web.Request) -> set[str]:
    """Host values that name this server: the loopback names and the served address, with the
    port the connection came in on (a DNS-rebound name is none of these)."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    port = sock[1] if sock else 0
    names = {"127.0.0.1", "localhost", "[::1]", s.host if ":" not in s.host else f"[{s.host}]"}
    return {f"{n}:{port}" for n in names}


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    s = request.app[SETTINGS]
    if request.host not in _allowed_hosts(s, request):
        return _secure(web.Response(status=403, text="forbidden: unknown Host\n"))
    token = request.query.get("token")
    if token is not None and hmac.compare_digest(token, s.token):
        rest = {k: v for k, v in request.query.items() if k != "token"}
        to = request.path + ("?" + urlencode(rest) if rest else "")
        found = web.Response(status=302, headers={"Location": to})
        found.set_cookie(COOKIE, s.token, httponly=True, samesite="Strict", path="/")
        return _secure(found)
    if not hmac.compare_digest(request.cookies.get(COOKIE, ""), s.token):
        return _secure(web.Response(status=403, text="forbidden: open the URL with the token "
                                    "that cos-scanner review printed\n"))  # fmt: skip
    if request.method != "GET":
        if request.method != "POST" or request.headers.get("Origin") != f"http://{request.host}":
            return _secure(web.Response(status=403, text="forbidden: cross-origin request\n"))
    return _secure(await handler(request))


def _secure(resp: web.StreamResponse) -> web.StreamResponse:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(",") if p.strip().lstrip("-").isdigit())


def _words(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _yes_no(text: str) -> bool | None:
    return {"yes": True, "no": False}.get(text)


async def queue_filter(request: web.Request) -> QueueFilter:
    """The filter a request's query names (defaults: undecided Result 2 and 1, latest scan)."""
    q = request.query
    band = q.get("band", "")
    low, high = BANDS.get(band, (0, 100))
    if "-" in band:
        parts = _ints(band.replace("-", ","))
        if len(parts) == 2:
            low, high = max(0, parts[0]), min(100, parts[1])
    scan = q.get("scan", "latest")
    scan_id = None
    if scan == "latest":
        scan_id = await request.app[STORE].latest_scan_id(request.app[SETTINGS].target) or None
    elif scan.isdigit():
        scan_id = int(scan)
    decision = q.get("decision", "undecided")
    return QueueFilter(
        results=_ints(q.get("result", "2,1")) or (2, 1),
        labels=_words(q.get("label", "")),
        sub_labels=_words(q.get("sub_label", "")),
        min_score=low,
        max_score=high,
        prefix=q.get("prefix", ""),
        decisions=() if decision == "any" else _words(decision),
        frozen=_yes_no(q.get("frozen", "")),
        acted=_yes_no(q.get("acted", "")),
        users=_words(q.get("user", "")),
        scan_id=scan_id,
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value else []


def _scene(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    ocr = _as_list(entry.get("OcrResults") or entry.get("Details"))
    return {
        "scene": str(entry.get("Scene") or name),
        "hit": bool(entry.get("HitFlag")) or entry.get("Suggestion") in ("Block", "Review"),
        "score": entry.get("Score"),
        "label": str(entry.get("Label") or ""),
        "sub_label": str(entry.get("SubLabel") or ""),
        "ocr": [
            {"text": str(o["Text"]), "keywords": [str(k) for k in _as_list(o.get("Keywords"))]}
            for o in ocr
            if isinstance(o, dict) and o.get("Text")
        ],
        "libs": [
            str(x.get("LibName") or x.get("ImageId") or "")
            for x in _as_list(entry.get("LibResults"))
            if isinstance(x, dict)
        ],
    }


def scene_details(raw: str | None) -> list[dict[str, Any]]:
    """Each scene of a stored answer (CI XML or IMS JSON): hit, score, labels, OCR text with
    its keywords, library hits."""
    try:
        data = raw_to_dict(raw or "")
    except ValueError:
        return []
    if isinstance(data.get("Response"), dict):
        data = data["Response"]
    return [
        _scene(name, entry)
        for name, block in data.items()
        if name.endswith(("Info", "Results"))
        for entry in _as_list(block)
        if isinstance(entry, dict) and {"Score", "HitFlag", "Suggestion"} & set(entry)
    ]


async def api_queue(request: web.Request) -> web.Response:
    where = await queue_filter(request)
    try:
        after = Cursor.decode(request.query.get("after", ""))
        limit = max(1, min(200, int(request.query.get("limit", "60") or 60)))
    except ValueError:
        return web.json_response({"error": "bad cursor or limit"}, status=400)
    store, target = request.app[STORE], request.app[SETTINGS].target
    rows, nxt = await store.queue(target, where, after, limit=limit)
    for row in rows:
        row["scenes"] = scene_details(row.pop("raw"))
    return web.json_response({"items": rows, "next": nxt.encode() if nxt else None})


async def api_counts(request: web.Request) -> web.Response:
    store, target = request.app[STORE], request.app[SETTINGS].target
    where = await queue_filter(request)
    counts = await store.queue_counts(target, where)
    return web.json_response({"counts": counts, "review": await store.review_counts(target)})


async def api_overview(request: web.Request) -> web.Response:
    store, target = request.app[STORE], request.app[SETTINGS].target
    return web.json_response(await store.overview(target, await queue_filter(request)))


async def api_meta(request: web.Request) -> web.Response:
    store, s = request.app[STORE], request.app[SETTINGS]
    return web.json_response({
        "target": s.target, "reviewer": s.reviewer, **await store.queue_labels(s.target),
        "latest_scan": await store.latest_scan_id(s.target),
    })  # fmt: skip


async def api_decide(request: web.Request) -> web.Response:
    store, s = request.app[STORE], request.app[SETTINGS]
    try:
        body = json.loads(await request.read())
        items = [(str(i["key"]), str(i["etag"])) for i in body["items"]]
        decision = str(body["decision"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": "expected {items: [{key, etag}], decision}"}, status=400)
    if decision not in (*DECISIONS, "undecided", "undo"):
        return web.json_response({"error": f"unknown decision {decision!r}"}, status=400)
    if body.get("copies"):
        items = await store.with_copies(s.target, items)
    if decision == "undo":
        applied: list[str] = []
        stale: list[str] = []
        for key, etag in items:
            back = await store.previous_decision(s.target, key, etag)
            done = await store.decide(s.target, [(key, etag)], back, s.reviewer)
            applied += done.applied
            stale += done.stale
        return web.json_response({"applied": applied, "stale": stale})
    done = await store.decide(s.target, items, decision, s.reviewer, str(body.get("note", "")))
    return web.json_response({"applied": list(done.applied), "stale": list(done.stale)})


async def thumb(request: web.Request) -> web.Response:
    key, etag = request.query.get("key", ""), request.query.get("etag", "")
    data, kind = await request.app[THUMBS].get(key, etag, full=request.path == "/image")
    return web.Response(body=data, headers={"Content-Type": kind})


async def static(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "index.html")
    if name not in STATIC:
        raise web.HTTPNotFound()
    body = resources.files("scanner.review").joinpath("static", name).read_bytes()
    return web.Response(body=body, headers={"Content-Type": f"{STATIC[name]}; charset=utf-8"})


async def no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def build_review_app(store: Store, settings: ReviewSettings, thumbs: Thumbs) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=1024 * 1024)
    app[STORE], app[SETTINGS], app[THUMBS] = store, settings, thumbs
    app.router.add_get("/", static)
    app.router.add_get("/favicon.ico", no_content)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/meta", api_meta)
    app.router.add_get("/api/queue", api_queue)
    app.router.add_get("/api/counts", api_counts)
    app.router.add_get("/api/overview", api_overview)
    app.router.add_post("/api/decide", api_decide)
    app.router.add_get("/thumb", thumb)
    app.router.add_get("/image", thumb)
    return app


@contextlib.asynccontextmanager
async def serving(
    store: Store, settings: ReviewSettings, thumbs: Thumbs, port: int
) -> AsyncIterator[int]:
    """Serve the page on `settings.host`:`port` while the block runs; yields the bound port."""
    runner = web.AppRunner(
        build_review_app(store, settings, thumbs), access_log=None, handle_signals=False
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        yield sockets[0].getsockname()[1] if sockets else port
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
