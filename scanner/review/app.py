"""`cos-scanner review`: a local web page where people look at flagged images and decide.

Who may ask is `guard.py`'s (token, session cookie, Host, Origin, CSP: scripts and styles only
from this server, no inline code, so a key like `<img src=x onerror=...>` is only ever text;
the page sets textContent, never HTML). Every query value is checked (400 otherwise), and
`/thumb` and `/image` serve only keys that have a verdict under the target: the page is not a
way to read the rest of the bucket.

The page is static files in `static/` (no build step); it reads `/api/*` as JSON. Decisions
are written at once, each in one short transaction (`Store.decide`).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio
from aiohttp import web

from scanner.audit.findings import findings, spoken
from scanner.audit.raw import raw_to_dict
from scanner.config import DETECT_TYPES
from scanner.media import class_of
from scanner.review.frames import Frames
from scanner.review.guard import SETTINGS, ReviewSettings, guard
from scanner.review.thumbs import Thumbs
from scanner.store import DECISIONS, Cursor, QueueFilter, Store
from scanner.watch import Nudge

STATIC = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
BANDS = {"sensitive": (91, 100), "suspected": (61, 90), "normal": (0, 60)}
STORE = web.AppKey("store", Store)
THUMBS = web.AppKey("thumbs", Thumbs)
FRAMES = web.AppKey("frames", Frames)
DECIDED = web.AppKey("decided", Nudge)  # told of each decision (acting.py acts on them)


#: The largest id SQLite holds: a bigger `scan` is no scan (it was a 500: an overflow).
MAX_ID = 2**63 - 1


def bad_request(why: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": why}), content_type="application/json")


def _ints(name: str, text: str, allowed: range) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() and int(p) in allowed for p in parts):
        raise bad_request(f"{name}: expected numbers in {allowed.start}..{allowed.stop - 1}")
    return tuple(int(p) for p in parts)


def _words(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _yes_no(name: str, text: str) -> bool | None:
    if text not in ("", "any", "yes", "no"):
        raise bad_request(f"{name}: expected yes, no or any")
    return {"yes": True, "no": False}.get(text)


def _band(band: str) -> tuple[int, int]:
    if not band:
        return 0, 100
    if band in BANDS:
        return BANDS[band]
    low, dash, high = band.partition("-")
    if dash and low.isdigit() and high.isdigit() and int(low) <= int(high) <= 100:
        return int(low), int(high)
    raise bad_request(f"band: expected one of {', '.join(BANDS)} or LOW-HIGH within 0-100")


async def target_of(request: web.Request, asked: str | None = None) -> str:
    """The target a request names (`target=`: one of the store's, a URL list's too), else
    the page's own; anything else is a 400."""
    default = request.app[SETTINGS].target
    asked = request.query.get("target", "") if asked is None else asked
    if not asked or asked == default:
        return default
    if asked not in await request.app[STORE].targets():
        raise bad_request("target: not a target of this store")
    return asked


async def queue_filter(request: web.Request) -> QueueFilter:
    """The filter a request's query names (defaults: the backlog, every undecided Result 2
    then 1 of the target across all scans, not acted on, still there); a value that names
    nothing is a 400, never a 500."""
    q = request.query
    low, high = _band(q.get("band", ""))
    scan = q.get("scan", "all")
    scan_id = None
    if scan == "latest":
        scan_id = await request.app[STORE].latest_scan_id(await target_of(request)) or None
    elif scan != "all":
        if not (scan.isdigit() and 0 < int(scan) <= MAX_ID):
            raise bad_request("scan: expected latest, all or a scan id")
        scan_id = int(scan)
    decision = q.get("decision", "undecided")
    decisions = () if decision == "any" else _words(decision)
    if set(decisions) - {*DECISIONS, "undecided"}:
        raise bad_request(f"decision: expected any, undecided or {', '.join(DECISIONS)}")
    return QueueFilter(
        results=_ints("result", q.get("result", "2,1"), range(3)) or (2, 1),
        labels=_words(q.get("label", "")),
        sub_labels=_words(q.get("sub_label", "")),
        min_score=low,
        max_score=high,
        prefix=q.get("prefix", ""),
        decisions=decisions,
        frozen=_yes_no("frozen", q.get("frozen", "")),
        acted=_yes_no("acted", q.get("acted", "no")),
        gone=_yes_no("gone", q.get("gone", "no")),
        users=_words(q.get("user", "")),
        scan_id=scan_id,
        holder=_holder(q.get("holder", "")),
    )


_HOLDER = re.compile(r"[A-Za-z0-9-]{8,64}")
_REVIEWER = re.compile(r"[\w .@+-]{1,64}")


def _holder(text: str) -> str:
    """A page's id (random, made by the page): its claims are its own."""
    if text and not _HOLDER.fullmatch(text):
        raise bad_request("holder: expected 8-64 letters, digits or dashes")
    return text


def reviewer_of(request: web.Request, given: object = None) -> str:
    """Who decides: the name the page gives (a team on one server), else the server's."""
    name = str(given or "").strip()
    if not name:
        return request.app[SETTINGS].reviewer
    if not _REVIEWER.fullmatch(name):
        raise bad_request("reviewer: 1-64 letters, digits, spaces or .@+-")
    return name


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
    store, target = request.app[STORE], await target_of(request)
    rows, nxt = await store.queue(target, where, after, limit=limit)
    if where.holder:  # the cards on this page are held for it; one another page took is not shown
        got = await store.claim_cards(
            target, [r["key"] for r in rows], where.holder,
            reviewer_of(request, request.query.get("reviewer")),
            request.app[SETTINGS].claim_seconds, release_others=after is None,
        )  # fmt: skip
        rows = [r for r in rows if r["key"] in got]
    for row in rows:
        raw = row.pop("raw")
        row["scenes"] = scene_details(raw)
        row["media"] = class_of(row["key"]) or ""
        if row["media"] not in ("image", ""):  # what the job found, where; URLs: /frame
            row["frames"] = [{k: v for k, v in f.items() if k != "url"} for f in findings(raw)]
            row["spoken"] = spoken(raw)
    return web.json_response({"items": rows, "next": nxt.encode() if nxt else None})


async def api_state(request: web.Request) -> web.Response:
    """The decision and the act outcome of decided cards now (the page asks after deciding,
    when `[review] on_block` / `on_approve` act on them)."""
    try:
        body = json.loads(await request.read())
        keys = [str(k) for k in body["keys"]]
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": "expected {keys: [...]}"}, status=400)
    target = await target_of(request, str(body.get("target") or ""))
    return web.json_response(await request.app[STORE].card_states(target, keys))


async def api_claims(request: web.Request) -> web.Response:
    """The page is still open: its cards stay held (the page calls this every minute)."""
    holder = _holder(request.query.get("holder", ""))
    renewed = await request.app[STORE].renew_claims(holder, request.app[SETTINGS].claim_seconds)
    return web.json_response({"renewed": renewed})


async def api_counts(request: web.Request) -> web.Response:
    store, target = request.app[STORE], await target_of(request)
    where = await queue_filter(request)
    return web.json_response({
        "counts": await store.queue_counts(target, where),
        "choices": await store.filter_counts(target, where),
        "review": await store.review_counts(target),
    })  # fmt: skip


async def api_overview(request: web.Request) -> web.Response:
    store, target = request.app[STORE], await target_of(request)
    overview = await store.overview(target, await queue_filter(request))
    overview["reviewers"] = await store.reviewer_figures(target)
    return web.json_response(overview)


async def api_meta(request: web.Request) -> web.Response:
    store, s = request.app[STORE], request.app[SETTINGS]
    target = await target_of(request)
    return web.json_response({
        "target": target, "reviewer": s.reviewer, **await store.queue_labels(target),
        "latest_scan": await store.latest_scan_id(target),
        "targets": sorted({s.target, *await store.targets()}),
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
    target = await target_of(request, str(body.get("target") or ""))
    reviewer = reviewer_of(request, body.get("reviewer"))
    holder = _holder(str(body.get("holder") or ""))
    if body.get("copies"):
        items = await store.with_copies(target, items)
    if decision == "undo":
        applied: list[str] = []
        stale: list[str] = []
        for key, etag in items:
            back = await store.previous_decision(target, key, etag)
            done = await store.decide(target, [(key, etag)], back, reviewer)
            if s.report_badcase and done.applied:  # withdraws what the undone one queued
                await store.queue_badcases(target, [(key, etag)], back, reviewer)
            applied += done.applied
            stale += done.stale
        return web.json_response({"applied": applied, "stale": stale})
    note = str(body.get("note") or "")[:1000]
    done = await store.decide(target, items, decision, reviewer, note)
    if s.report_badcase:
        etags = dict(items)
        decided = [(k, etags[k]) for k in done.applied]
        await store.queue_badcases(target, decided, decision, reviewer, _label(body))
    if holder:
        await store.release_cards(target, list(done.applied), holder)
    if done.applied and DECIDED in request.app:  # [review] on_block / on_approve act now
        request.app[DECIDED].nudge()
    return web.json_response({"applied": list(done.applied), "stale": list(done.stale)})


def _label(body: dict[str, Any]) -> str:
    """A block's label for an image the service called normal (what the reviewer says it is:
    sent to CI as SuggestedLabel); one of the service's labels, else none."""
    label = str(body.get("label") or "")
    return label if label in DETECT_TYPES else ""


async def thumb(request: web.Request) -> web.Response:
    key, etag = request.query.get("key", ""), request.query.get("etag", "")
    target = await target_of(request)
    if not await request.app[STORE].has_verdict(target, key, etag):
        raise web.HTTPNotFound(text="no verdict of this key and ETag under the target\n")
    full = request.path == "/image"
    if target.startswith("urls://"):  # a URL list's key is the picture's URL
        data, kind = await request.app[THUMBS].get_url(key, etag)
    else:
        data, kind = await request.app[THUMBS].get(key, etag, full=full)
    return web.Response(body=data, headers={"Content-Type": kind})


async def frame(request: web.Request) -> web.Response:
    """The n-th flagged frame (or page) of a video's (document's) job, fetched fresh."""
    key, etag = request.query.get("key", ""), request.query.get("etag", "")
    n = (_ints("n", request.query.get("n", "0"), range(10_000)) or (0,))[0]
    job_id = await request.app[STORE].verdict_job(await target_of(request), key, etag)
    if job_id is None:
        raise web.HTTPNotFound(text="no verdict of this key and ETag under the target\n")
    data, kind = await request.app[FRAMES].get(key, job_id, n)
    return web.Response(body=data, headers={"Content-Type": kind})


async def static(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "index.html")
    if name not in STATIC:
        raise web.HTTPNotFound()
    body = resources.files("scanner.review").joinpath("static", name).read_bytes()
    return web.Response(body=body, headers={"Content-Type": f"{STATIC[name]}; charset=utf-8"})


async def no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def build_review_app(
    store: Store, settings: ReviewSettings, thumbs: Thumbs, decided: Nudge | None = None,
    frames: Frames | None = None,
) -> web.Application:  # fmt: skip
    app = web.Application(middlewares=[guard], client_max_size=1024 * 1024)
    app[STORE], app[SETTINGS], app[THUMBS] = store, settings, thumbs
    app[FRAMES] = frames or Frames(None, thumbs)
    if decided is not None:
        app[DECIDED] = decided
    app.router.add_get("/", static)
    app.router.add_get("/favicon.ico", no_content)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/meta", api_meta)
    app.router.add_get("/api/queue", api_queue)
    app.router.add_get("/api/counts", api_counts)
    app.router.add_get("/api/overview", api_overview)
    app.router.add_post("/api/decide", api_decide)
    app.router.add_post("/api/claims", api_claims)
    app.router.add_post("/api/state", api_state)
    app.router.add_get("/thumb", thumb)
    app.router.add_get("/image", thumb)
    app.router.add_get("/frame", frame)
    return app


@contextlib.asynccontextmanager
async def serving(
    store: Store, settings: ReviewSettings, thumbs: Thumbs, port: int,
    decided: Nudge | None = None, frames: Frames | None = None,
) -> AsyncIterator[int]:  # fmt: skip
    """Serve the page on `settings.host`:`port` while the block runs; yields the bound port."""
    app = build_review_app(store, settings, thumbs, decided, frames)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        yield sockets[0].getsockname()[1] if sockets else port
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
