"""Bucket listing: ListObjects v1 pages as typed models.

Always asks for `encoding-type=url` and decodes keys with `unquote` (not `unquote_plus`), so
keys with `%`, `+`, spaces, newlines or any unicode survive. The next page starts at
NextMarker, or at the last key/prefix when COS leaves NextMarker out. `iter_pages` is a plain
async generator: no task group or cancel scope inside.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import unquote

import anyio

from scanner.clock import Clock
from scanner.config import CosSettings
from scanner.cos.client import HttpClient, cos_service, unreadable
from scanner.cos.xml import Node, XmlError, parse, text, to_int
from scanner.errors import ConfigError, OnRetry, ServiceError, ThrottledError
from scanner.limiter import AuditBudget
from scanner.models import ObjectRef, Page
from scanner.retry import RetryPolicy, retrying

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _object(item: Node, decode: Callable[[str], str]) -> ObjectRef:
    """A <Contents> entry, its children read in one pass (no find() per field)."""
    f = {child.tag: child.text for child in item}
    return ObjectRef(
        key=decode(f.get("Key") or ""),
        etag=(f.get("ETag") or "").strip('"'),
        size=to_int(f.get("Size") or "0"),
        last_modified=_when(f.get("LastModified") or ""),
        storage_class=f.get("StorageClass") or "STANDARD",
    )


class TooManyEntries(ValueError):
    """A page with more entries than max-keys asked for: a protocol violation, not retried."""


def parse_page(body: bytes, marker: str, max_keys: int | None = None) -> Page:
    """A ListBucketResult body as a Page; raises XmlError/ValueError when it is not one.

    A page with more Contents + CommonPrefixes than `max_keys` is refused before it is parsed
    (a counted byte scan), so memory stays flat whatever the server does.
    """
    if max_keys is not None:
        entries = body.count(b"<Contents>") + body.count(b"<CommonPrefixes>")
        if entries > max_keys:
            raise TooManyEntries(f"page has {entries} entries, max-keys asked for {max_keys}")
    root = parse(body)
    if root.tag != "ListBucketResult":
        raise XmlError(f"expected ListBucketResult, got <{root.tag}>")
    decode = unquote if text(root, "EncodingType").lower() == "url" else (lambda s: s)
    objects = [_object(item, decode) for item in root.iterfind("Contents")]
    prefixes = tuple(decode(text(p, "Prefix")) for p in root.iterfind("CommonPrefixes"))
    next_marker = None
    if text(root, "IsTruncated").lower() == "true":
        next_marker = decode(text(root, "NextMarker"))
        if not next_marker:
            last = [o.key for o in objects[-1:]] + list(prefixes[-1:])
            next_marker = max(last) if last else ""
        if not next_marker or next_marker <= marker:
            raise XmlError(f"truncated page gives no way forward (next marker {next_marker!r})")
    return Page(
        marker=marker, objects=tuple(objects), common_prefixes=prefixes, next_marker=next_marker
    )


def cos_budget(settings: CosSettings, clock: Clock) -> AuditBudget:
    """`[cos] qps`: a scan's one COS request budget, shared by its listers, their folder views
    and its Inventory downloads; in flight, a request per lister and a steal's few views."""
    return AuditBudget(8 * settings.list_concurrency, settings.qps, clock)


class Lister:
    """Lists one bucket (under its configured prefix) page by page."""

    def __init__(
        self,
        http: HttpClient,
        settings: CosSettings,
        *,
        retry: RetryPolicy,
        clock: Clock,
        budget: AuditBudget,
        on_retry: OnRetry | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._service = cos_service(settings)
        self._retry = retry
        self._clock = clock
        self._on_retry = on_retry
        self._budget = budget  # `cos_budget`: [cos] qps, shared by the scan's COS requests

    async def probe(self) -> None:
        """One cheap signed request (a listing of one key): that the credentials, the bucket
        and its region work, when nothing else is to be sent (a dry run with nothing to do)."""
        await self.page("", max_keys=1)

    async def page(
        self, marker: str = "", *, prefix: str | None = None, delimiter: str = "",
        max_keys: int | None = None,
    ) -> Page:  # fmt: skip
        """One page of at most `page_size` objects after `marker`, under the `[cos] qps` budget."""
        limit = max_keys or self._settings.page_size
        params = {
            "prefix": self._settings.prefix if prefix is None else prefix,
            "marker": marker,
            "max-keys": str(limit),
            "encoding-type": "url",
        }
        if delimiter:
            params["delimiter"] = delimiter

        async def attempt() -> Page:
            async with await self._budget.slot() as sent_at:
                try:
                    reply = await self._http.send(
                        self._service,
                        "GET",
                        "/",
                        params=params,
                        timeout_s=self._settings.timeout,
                        max_bytes=self._settings.max_response_bytes,
                    )
                except ThrottledError as exc:  # the budget learns the bucket's limit
                    self._budget.rate.on_throttled(sent_at, exc.retry_after)
                    raise
            self._budget.rate.on_success()
            try:
                return parse_page(reply.body, marker, limit)
            except TooManyEntries as exc:
                raise unreadable("cos", "listing", reply, exc) from exc
            except (XmlError, ValueError) as exc:
                # a listing GET is idempotent and unbilled: an unreadable 200 (HTML from a
                # proxy, a truncated body) is retried like a 5xx
                raise unreadable("cos", "listing", reply, exc, retryable=True) from exc

        try:
            return await retrying(self._retry, self._clock, attempt, on_retry=self._on_retry)
        except ServiceError as exc:
            if exc.status == 404 and exc.code == "NoSuchBucket":  # nothing to run again for
                raise ConfigError(
                    f"bucket {self._settings.bucket} not found in region "
                    f"{self._settings.region}: check [cos] bucket and region"
                ) from exc
            raise

    async def iter_pages(
        self, marker: str = "", *, prefix: str | None = None
    ) -> AsyncIterator[Page]:
        """Pages from `marker` to the end of the listing."""
        while True:
            page = await self.page(marker, prefix=prefix)
            yield page
            if page.next_marker is None:
                return
            marker = page.next_marker

    async def _children(
        self, prefix: str, found: dict[str, list[str]], slots: anyio.CapacityLimiter
    ) -> None:
        async with slots:
            page = await self.page("", prefix=prefix, delimiter="/")
        found[prefix] = list(page.common_prefixes) or [prefix]

    async def split(self, parts: int, depth: int = 3) -> list[str]:
        """Up to `parts - 1` split points (sorted) that cut the keys under the prefix into
        ranges of about as many common prefixes each. The prefixes come from `/` delimiter
        listings, every prefix of a level listed (8 at a time) for the next level, until
        there are 4 x `parts` of them or `depth` levels. A prefix's size is unknown, so the
        ranges may be unequal: the listers rebalance them as they go (`scanner.scan.ranges`). A
        bucket without that structure gets no split points (one range)."""
        level = [self._settings.prefix]
        slots = anyio.CapacityLimiter(8)
        for _ in range(depth):
            if len(level) >= 4 * parts:
                break
            found: dict[str, list[str]] = {}
            async with anyio.create_task_group() as tg:
                for prefix in level[: self._settings.page_size]:
                    tg.start_soon(self._children, prefix, found, slots)
            deeper = sorted({p for ps in found.values() for p in ps})
            if deeper == level:
                break
            level = deeper
        if len(level) < 2:
            return []
        n = min(parts, len(level))
        # the range before a point holds keys <= it; keys under the point's prefix come after
        return sorted({level[round(i * len(level) / n)] for i in range(1, n)})

    async def split_point(self, after: str, upto: str | None) -> str | None:
        """A key between `after` and `upto` with keys on both sides, for an idle lister to
        take the rest of a busy range from (`scanner.scan.ranges`). Found where the keys are, not
        by arithmetic on strings: `/` delimiter listings from `after` under the parent
        prefixes of `after` and `upto` (the shallowest 2 of each, at once) show the range's
        children at each level, and the level showing the most (a truncated one: a page and
        more) is cut at its middle child. Else a level showing a single folder is looked
        into, and `after`'s next deeper parent (2 more rounds at most). None when no level
        shows two children in the range."""
        base = self._settings.prefix
        parents = sorted({base, *_parents(after, base), *_parents(upto or "", base)} - {upto})
        seen: set[str] = set()
        for deeper in range(3, 6):
            seen.update(parents)
            levels = await self._views(after, parents)
            mid = pick_split(levels, after, upto, self._settings.page_size)
            if mid is not None:
                return mid
            lone = [_inside(level, after, upto) for level in levels]  # one folder: look in
            folders = {c[0] for c in lone if len(c) == 1 and c[0].endswith("/")}
            parents = sorted((folders | set(_parents(after, base, deeper))) - seen)
            if not parents:
                return None
        return None

    async def _views(self, after: str, parents: list[str]) -> list[Page]:
        """`/` delimiter listings from `after` under each of `parents`, at once."""
        levels = [Page(after, ())] * len(parents)

        async def view(n: int) -> None:
            levels[n] = await self.page(after, prefix=parents[n], delimiter="/")

        async with anyio.create_task_group() as tg:
            for n in range(len(parents)):
                tg.start_soon(view, n)
        return levels


def _parents(key: str, base: str, depth: int = 2) -> list[str]:
    """The folder prefixes of `key` below the listing's prefix `base`, shallowest first."""
    if not key.startswith(base):
        return []
    return [key[: i + 1] for i, ch in enumerate(key) if ch == "/" and i >= len(base)][:depth]


def _inside(level: Page, after: str, upto: str | None) -> list[str]:
    """The children a folder view shows in (`after`, `upto`), in order."""
    names = {o.key for o in level.objects} | set(level.common_prefixes)
    return sorted(c for c in names if c > after and (upto is None or c < upto))


def pick_split(levels: list[Page], after: str, upto: str | None, page_size: int) -> str | None:
    """The middle child (object key or common prefix) in (`after`, `upto`) of the level with
    the most of them; a truncated level counts a page more (there are more past it). When no
    level shows two, the middle of all levels' children together, folders that hold another
    child left out. A cut at child c keeps keys <= c on the busy side and gives keys > c (c's
    own keys, if it is a prefix) to the new range, so both sides hold at least one child."""
    best: list[str] = []
    score = 0
    for level in levels:
        children = _inside(level, after, upto)
        wide = level.next_marker is not None and (upto is None or level.next_marker < upto)
        n = len(children) + (page_size if wide else 0)
        if len(children) >= 2 and n > score:
            best, score = children, n
    if not best:
        every = sorted({c for level in levels for c in _inside(level, after, upto)})
        best = [
            c
            for i, c in enumerate(every)
            if not every[i + 1 :][:1] or not every[i + 1].startswith(c)
        ]
    return best[len(best) // 2] if len(best) >= 2 else None
