"""Thumbnails for the review page, fetched by the server with the signed COS client.

A thumbnail is CI image processing on download (`GET /<key>?imageMogr2/thumbnail/320x`,
reference 9); where that fails (a bucket not bound to CI, a format it cannot process) the
original bytes are used, up to a size limit. Credentials never reach the page: it only ever
sees this server's `/thumb` URLs. A broken or missing object becomes a placeholder picture
that says why. The cache is bounded in bytes (least recently used goes first).
"""

from __future__ import annotations

from collections import OrderedDict
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import yarl

from scanner.config import CosSettings
from scanner.cos.client import USER_AGENT, HttpClient, Service, cos_service
from scanner.errors import RemoteError, ServiceError

THUMBNAIL = "imageMogr2/thumbnail/320x"
MAX_ORIGINAL = 12 * 1024 * 1024
_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png", b"GIF8": "image/gif",
          b"RIFF": "image/webp", b"BM": "image/bmp"}  # fmt: skip


def image_type(data: bytes) -> str | None:
    """The content type of image bytes by their magic (None: not an image we show)."""
    return next((t for magic, t in _TYPES.items() if data.startswith(magic)), None)


def placeholder(reason: str) -> bytes:
    """A grey picture that says why there is no image (SVG; the reason escaped)."""
    text = escape(reason[:60])
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
        '<rect width="320" height="240" fill="#e5e7eb"/>'
        '<text x="160" y="115" font-family="sans-serif" font-size="15" text-anchor="middle" '
        'fill="#374151">no image</text><text x="160" y="140" font-family="sans-serif" '
        f'font-size="12" text-anchor="middle" fill="#6b7280">{text}</text></svg>'
    ).encode()


class Thumbs:
    def __init__(self, http: HttpClient, cos: CosSettings, max_bytes: int = 64 * 1024 * 1024):
        self._http = http
        self._service = cos_service(cos)
        self._cos = cos
        self._cache: OrderedDict[tuple[str, str, bool], tuple[bytes, str]] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self.fetched = 0

    async def get(self, key: str, etag: str, *, full: bool = False) -> tuple[bytes, str]:
        """(bytes, content type) of the thumbnail (or, with `full`, the image) of `key`."""
        slot = (key, etag, full)
        hit = self._cache.get(slot)
        if hit is not None:
            self._cache.move_to_end(slot)
            return hit
        return self._keep(slot, await self._fetch(key, full))

    async def get_url(self, url: str, etag: str) -> tuple[bytes, str]:
        """The picture of a URL list's entry: its URL fetched by this server, unsigned (the
        page's CSP lets it show only this server's pictures), as it is (thumbnail and full
        image alike: CI image processing is for the bucket's objects)."""
        slot = (url, etag, True)
        hit = self._cache.get(slot)
        if hit is not None:
            self._cache.move_to_end(slot)
            return hit
        return self._keep(slot, await self._fetch_url(url))

    async def _fetch_url(self, url: str) -> tuple[bytes, str]:
        self.fetched += 1
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return placeholder("not an http(s) URL"), "image/svg+xml"
        base = f"{parts.scheme}://{parts.netloc}"
        service = Service("url", base, parts.netloc, "")
        try:
            reply = await self._http.exchange(
                service, "GET", yarl.URL(url, encoded=True), {"User-Agent": USER_AGENT}, b"",
                self._cos.timeout, MAX_ORIGINAL,
            )  # fmt: skip
        except RemoteError as exc:
            return placeholder(exc.message[:60]), "image/svg+xml"
        if reply.status >= 300:
            return placeholder(f"HTTP {reply.status}"), "image/svg+xml"
        kind = image_type(reply.body)
        if kind is None:
            return placeholder("not an image the page can show"), "image/svg+xml"
        return reply.body, kind

    def _keep(self, slot: tuple[str, str, bool], got: tuple[bytes, str]) -> tuple[bytes, str]:
        self._cache[slot] = got
        self._bytes += len(got[0])
        while self._bytes > self._max and self._cache:
            _, (data, _t) = self._cache.popitem(last=False)
            self._bytes -= len(data)
        return got

    async def _fetch(self, key: str, full: bool) -> tuple[bytes, str]:
        self.fetched += 1
        tries = [{}] if full else [{THUMBNAIL: ""}, {}]
        reason = "not an image"
        for params in tries:
            try:
                reply = await self._http.send(
                    self._service, "GET", "/" + key, params=params, timeout_s=self._cos.timeout,
                    max_bytes=MAX_ORIGINAL,
                )  # fmt: skip
            except ServiceError as exc:
                if exc.status == 404:
                    return placeholder("the object is gone"), "image/svg+xml"
                reason = exc.code or f"HTTP {exc.status}"
                continue
            except RemoteError as exc:
                reason = exc.message[:60]
                continue
            kind = image_type(reply.body)
            if kind is not None:
                return reply.body, kind
            reason = "not an image the page can show"
        return placeholder(reason), "image/svg+xml"
