"""COS object operations for acting on verdicts (reference 8): HEAD, GET/PUT `?acl`, copy,
DELETE, each under the act budget (a strict QPS limit and an in-flight cap) with retries.

`acl()` reads an object's canned ACL from `GET ?acl`: an AllUsers READ grant is
`public-read`; without one the answer cannot tell `private` from `default` (which inherits
the bucket's ACL), and it is reported as `default`, what a restore puts back.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import anyio

from scanner.clock import Clock
from scanner.config import CosSettings
from scanner.cos.client import HttpClient, Reply, Service, cos_service, unreadable
from scanner.cos.xml import XmlError, parse_cold
from scanner.errors import AuthError, OnRetry, ServiceError, ThrottledError
from scanner.limiter import AuditBudget
from scanner.retry import RetryPolicy, retrying, unless_set

ALL_USERS = "http://cam.qcloud.com/groups/global/AllUsers"
T = TypeVar("T")


def _local(tag: str) -> str:
    """A tag without its namespace: `{http://...}Grant` is `Grant` (answers may carry one)."""
    return tag.rsplit("}", 1)[-1]


def _texts(elem: ET.Element) -> dict[str, str]:
    """Local name -> text of every element below `elem` (the last one wins)."""
    return {_local(e.tag): (e.text or "").strip() for e in elem.iter()}


def canned_acl(body: bytes) -> str:
    """The canned ACL a GET ?acl answer amounts to: `public-read` when all users may read,
    else `default` (without a grant to all users, private and inherited look the same)."""
    for grant in parse_cold(body).iter():
        if _local(grant.tag) != "Grant":
            continue
        fields = _texts(grant)
        if fields.get("URI") == ALL_USERS and fields.get("Permission") in ("READ", "FULL_CONTROL"):
            return "public-read"
    return "default"


@dataclass(frozen=True, slots=True)
class Head:
    etag: str
    size: int
    version_id: str = ""  # x-cos-version-id: the version at the key ("" unversioned bucket)
    storage_class: str = "STANDARD"  # x-cos-storage-class (sent only for the other classes)


class ObjectClient:
    """Object calls on the configured bucket, or on another bucket of the same region."""

    def __init__(
        self,
        http: HttpClient,
        cos: CosSettings,
        *,
        retry: RetryPolicy,
        clock: Clock,
        budget: AuditBudget,
        stop: anyio.Event | None = None,
        on_retry: OnRetry | None = None,
    ) -> None:
        self._http = http
        self._cos = cos
        self._retry = retry
        self._clock = clock
        self.budget = budget
        self._stop = stop
        self._on_retry = on_retry
        self._services: dict[str, Service] = {}
        self.requests = 0

    def service(self, bucket: str = "") -> Service:
        name = bucket or self._cos.bucket
        if name not in self._services:
            self._services[name] = cos_service(replace(self._cos, bucket=name))
        return self._services[name]

    async def _call(self, send: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with await unless_set(self._stop, self.budget.slot) as sent_at:
                self.requests += 1
                try:
                    result = await send()
                except ThrottledError as exc:
                    self.budget.rate.on_throttled(sent_at, exc.retry_after)
                    raise
            self.budget.rate.on_success()
            return result

        return await retrying(
            self._retry, self._clock, attempt, on_retry=self._on_retry, stop=self._stop
        )

    async def _send(self, method: str, key: str, *, bucket: str = "", **kw: object) -> Reply:
        return await self._call(
            lambda: self._http.send(
                self.service(bucket),
                method,
                "/" + key,
                timeout_s=self._cos.timeout,
                max_bytes=self._cos.max_response_bytes,
                **kw,  # type: ignore[arg-type]
            )
        )

    async def head(self, key: str, bucket: str = "", version_id: str = "") -> Head | None:
        """The object's ETag and size (of version `version_id`, when given); None when it
        does not exist."""
        params = {"versionId": version_id} if version_id else None
        try:
            reply = await self._send("HEAD", key, bucket=bucket, params=params)
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise
        etag = reply.headers.get("ETag", "").strip('"')
        version = reply.headers.get("x-cos-version-id", "")
        size = int(reply.headers.get("Content-Length", "0") or 0)
        return Head(etag, size, version, reply.headers.get("x-cos-storage-class", "STANDARD"))

    async def get(self, key: str, max_bytes: int, bucket: str = "") -> bytes | None:
        """The object's bytes (ProtocolError when over `max_bytes`); None when it is gone."""
        try:
            reply = await self._call(
                lambda: self._http.send(
                    self.service(bucket),
                    "GET",
                    "/" + key,
                    timeout_s=self._cos.timeout,
                    max_bytes=max_bytes,
                )
            )
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise
        return reply.body

    async def download(self, key: str, dest: Path, max_bytes: int, bucket: str = "") -> bool:
        """The object's bytes streamed into `dest` (rewritten on each attempt); False when
        the object does not exist."""

        async def attempt() -> Reply:
            with dest.open("wb") as out:
                return await self._http.send(
                    self.service(bucket),
                    "GET",
                    "/" + key,
                    timeout_s=max(self._cos.timeout, 600.0),
                    max_bytes=max_bytes,
                    sink=out.write,
                )

        try:
            await self._call(attempt)
        except ServiceError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def public(self, key: str, bucket: str = "") -> bool:
        """Whether an anonymous HEAD of the object succeeds (its effective ACL is public)."""
        try:
            await self._send("HEAD", key, bucket=bucket, signed=False)
        except (ServiceError, AuthError) as exc:
            if exc.status in (401, 403, 404):
                return False
            raise
        return True

    async def acl(self, key: str, bucket: str = "") -> str:
        """`public-read`, or `default` (no grant to all users: private or inherited)."""
        reply = await self._send("GET", key, bucket=bucket, params={"acl": ""})
        try:
            return canned_acl(reply.body)
        except XmlError as exc:
            raise unreadable("cos", "ACL", reply, exc) from exc

    async def put_acl(self, key: str, acl: str, bucket: str = "") -> None:
        await self._send("PUT", key, bucket=bucket, params={"acl": ""}, headers={"x-cos-acl": acl})

    async def copy(
        self,
        src_key: str,
        dst_key: str,
        *,
        if_match: str,
        src_bucket: str = "",
        dst_bucket: str = "",
        acl: str = "",
        src_version: str = "",
        forbid_overwrite: bool = False,
    ) -> str:
        """Server-side copy of `src_bucket/src_key` (its version `src_version`, when given) to
        `dst_bucket/dst_key` (empty: the configured bucket), only if the source still has ETag
        `if_match`; returns the copy's ETag. `acl` sets the copy's ACL (none: `default`);
        `forbid_overwrite` asks COS to refuse an existing destination (409 FileAlreadyExists;
        reference 14.1: unconfirmed, never relied on alone)."""
        src = self.service(src_bucket)
        source = f"{src.host}/{quote(src_key, safe='/')}"
        if src_version:
            source += f"?versionId={quote(src_version, safe='')}"
        headers = {
            "x-cos-copy-source": source,
            "x-cos-copy-source-If-Match": f'"{if_match}"',
            "x-cos-metadata-directive": "Copy",
        }
        if acl and acl != "default":
            headers["x-cos-acl"] = acl
        if forbid_overwrite:
            headers["x-cos-forbid-overwrite"] = "true"
        reply = await self._send("PUT", dst_key, bucket=dst_bucket, headers=headers)
        try:
            etag = _texts(parse_cold(reply.body)).get("ETag")
        except XmlError as exc:
            raise unreadable("cos", "copy answer", reply, exc) from exc
        if not etag:  # a 200 can carry an error body (reference 8)
            raise unreadable("cos", "copy answer", reply, ValueError("no ETag"))
        return etag.strip('"')

    async def delete(self, key: str, bucket: str = "", version_id: str = "") -> None:
        """DELETE: 204, also when the key is already gone; with `version_id`, exactly that
        version (on a versioned bucket: removed for good, a newer upload stays)."""
        params = {"versionId": version_id} if version_id else None
        await self._send("DELETE", key, bucket=bucket, params=params)

    async def versioning(self, bucket: str = "") -> str:
        """The bucket's versioning: "" (never enabled), "Enabled" or "Suspended"."""
        reply = await self._send("GET", "", bucket=bucket, params={"versioning": ""})
        try:
            return _texts(parse_cold(reply.body)).get("Status", "")
        except XmlError as exc:
            raise unreadable("cos", "versioning", reply, exc) from exc
