"""Control endpoints under /_emulator/ (a path no real API uses): stats, faults, objects.

Unauthenticated, JSON in and out. They let a test or benchmark in another process inspect
and steer the emulator exactly as an in-process test does through EmulatorState.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from scanner.emulator.bucket import StoredObject, etag_of
from scanner.emulator.inventory import generate
from scanner.emulator.state import EmulatorState, Stats


def churn(
    state: EmulatorState, *, change: float, add: float, delete: float, seed: int
) -> dict[str, list[str]]:
    """Change (new ETag), add and delete the given fractions of the bucket's objects."""
    rng = random.Random(seed)
    keys = list(state.bucket.keys())
    n = len(keys)
    picked = rng.sample(keys, min(n, round(n * (change + delete))))
    n_delete = min(len(picked), round(n * delete))
    deleted, changed = picked[:n_delete], picked[n_delete:]
    for key in deleted:
        state.bucket.delete(key)
    for key in changed:
        state.versions[key] += 1
        state.bucket.touch(key, state.versions[key])
    added = []
    for i in range(round(n * add)):
        key = f"albums/new-{seed}/IMG_{i:07d}.jpg"
        state.bucket.put(
            key, StoredObject(etag_of(key), rng.randint(30_000, 3_000_000), datetime.now(UTC))
        )
        added.append(key)
    state.bucket.keys()
    return {"changed": changed, "added": added, "deleted": deleted}


def apply_objects(state: EmulatorState, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, meta in (body.get("put") or {}).items():
        state.versions[key] += 1
        obj = StoredObject(
            meta.get("etag") or etag_of(key, state.versions[key]),
            int(meta.get("size", 100_000)),
            datetime.now(UTC),
            meta.get("storage_class", "STANDARD"),
        )
        state.bucket.put(key, obj)
    out["deleted"] = sum(state.bucket.delete(k) for k in body.get("delete") or [])
    for key in body.get("touch") or []:
        state.versions[key] += 1
        state.bucket.touch(key, state.versions[key])
    if "churn" in body:
        c = body["churn"]
        out.update(
            churn(
                state,
                change=float(c.get("change", 0)),
                add=float(c.get("add", 0)),
                delete=float(c.get("delete", 0)),
                seed=int(c.get("seed", 2)),
            )
        )
    out["objects"] = len(state.bucket)
    return out


def add_routes(app: web.Application, key: web.AppKey[EmulatorState]) -> None:
    async def stats(request: web.Request) -> web.Response:
        detail = request.query.get("detail", "") in ("1", "true")
        return web.json_response(request.app[key].stats.as_json(detail))

    async def faults(request: web.Request) -> web.Response:
        state = request.app[key]
        if request.method == "POST":
            try:
                state.faults.update(await request.json())
                state.fault_updates += 1
                state.fault_changes.changed()
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(state.faults_json())

    async def objects(request: web.Request) -> web.Response:
        try:
            return web.json_response(apply_objects(request.app[key], await request.json()))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def inventory(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            folder = body.get("folder")
            made = generate(
                request.app[key],
                folder=Path(folder) if folder else None,
                config_id=str(body.get("id", "daily")),
                rows_per_file=int(body.get("rows_per_file", 250_000)),
                destination=str(body.get("destination", "")),
                day=str(body.get("day", "")),
            )
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(made)

    async def reset(request: web.Request) -> web.Response:
        request.app[key].stats = Stats()
        return web.json_response({"ok": True})

    app.router.add_get("/_emulator/stats", stats)
    app.router.add_route("GET", "/_emulator/faults", faults)
    app.router.add_route("POST", "/_emulator/faults", faults)
    app.router.add_post("/_emulator/objects", objects)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_post("/_emulator/inventory", inventory)
