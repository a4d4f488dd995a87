"""Fetching what a `Url` / `FileUrl` input names, and judging it, as the service would.

The emulator fetches the URL for real (over loopback in tests: its own presigned object URLs,
which must verify, or another local server). Its own objects are judged by the rules for their
key (the same verdict as an Object input); other images by their bytes; what is not an image
(by its magic bytes) is refused.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web

from scanner.emulator.bucket import StoredObject
from scanner.emulator.images import seed_in
from scanner.emulator.objects import PIXEL
from scanner.emulator.rules import Verdict, verdict_for
from scanner.emulator.state import EmulatorState

MAX_FETCH_BYTES = 32 * 1024 * 1024
TOO_LARGE = "over 32 MB"
#: Marks the emulator's own fetches of URL inputs: they get no injected latency of their own
#: (`[faults] latency` is the service's answer time, the fetch included).
FETCH_HEADER = "X-Emulator-Fetch"
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"RIFF")


def is_image(data: bytes) -> bool:
    return data.startswith(_MAGIC) or data[4:12] in (b"ftypheic", b"ftypheif", b"ftypmif1")


async def fetch(state: EmulatorState, url: str) -> tuple[bytes | None, str]:
    """(bytes, "") or (None, why): at most MAX_FETCH_BYTES, within 10 s, http(s) only."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None, "not an http(s) URL"
    if state.fetcher is None:
        state.fetcher = aiohttp.ClientSession(auto_decompress=False)
    try:
        async with state.fetcher.get(
            url,
            timeout=aiohttp.ClientTimeout(total=10),
            allow_redirects=False,
            headers={FETCH_HEADER: "1"},  # the service's own fetch: part of its answer time
        ) as resp:
            if resp.status != 200:
                return None, f"HTTP {resp.status}"
            chunks, size = [], 0
            async for chunk in resp.content.iter_any():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_FETCH_BYTES:
                    break
            data = b"".join(chunks)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if len(data) > MAX_FETCH_BYTES:
        return None, TOO_LARGE
    return data, ""


def own_key(state: EmulatorState, url: str, hosts: frozenset[str]) -> str | None:
    """The key of the emulator's object a URL on one of the emulator's own addresses names."""
    parts = urlsplit(url)
    if parts.netloc not in hosts and not parts.netloc.startswith(
        f"{state.bucket_name}.cos.{state.region}."
    ):
        return None
    key = unquote(parts.path[1:])
    return key if key in state.bucket.objects else None


def served_key(state: EmulatorState, data: bytes) -> str | None:
    """The key whose bytes these are, if the emulator served them (FileContent)."""
    seed = seed_in(data)
    if seed is None and data.startswith(PIXEL) and len(data) >= len(PIXEL) + 32:
        seed = data[len(PIXEL) : len(PIXEL) + 32]
    return None if seed is None else state.served.get(seed)


def content_verdict(data: bytes, scenes: tuple[str, ...], large: bool) -> Verdict:
    """Bytes the emulator did not serve: judged as an image named after their hash."""
    digest = hashlib.sha256(data).hexdigest()
    blob = StoredObject(digest[:32], len(data), datetime.now(UTC))
    return verdict_for(f"content-{digest[:16]}.jpg", blob, scenes=scenes, large_image_detect=large)


def own_hosts(request: web.Request) -> frozenset[str]:
    """The addresses a client may use for this emulator: the Host it was sent, and the
    socket it listens on (an IP Host, a virtual-host Host, or the IP:port in a URL)."""
    listening = listening_on(request)
    return frozenset({request.host, listening} if listening else {request.host})


def listening_on(request: web.Request) -> str | None:
    """The `ip:port` of the socket the request came in on (IPv6 in brackets)."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if not sock:
        return None
    host = f"[{sock[0]}]" if ":" in sock[0] else sock[0]
    return f"{host}:{sock[1]}"


async def judge_url(
    state: EmulatorState,
    url: str,
    hosts: frozenset[str],
    scenes: tuple[str, ...],
    large: bool,
) -> tuple[str, Verdict]:
    """(what was judged: the emulator's key or the URL, the verdict) for a URL input."""
    data, why = await fetch(state, url)
    if data is None and why == TOO_LARGE:
        return url, Verdict(code="-65011", message="file too large")
    if data is None:
        return url, Verdict(code="-65010", message=f"download failed: {why}")
    key = own_key(state, url, hosts)
    if key is not None:
        obj = state.bucket.objects[key]
        return key, verdict_for(key, obj, scenes=scenes, large_image_detect=large)
    if not is_image(data):
        return url, Verdict(code="-65013", message="file does not meet requirements (format)")
    return url, content_verdict(data, scenes, large)


async def close(state: EmulatorState) -> None:
    if state.fetcher is not None:
        await state.fetcher.close()
        state.fetcher = None
