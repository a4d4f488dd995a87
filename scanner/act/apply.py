"""Applying an act run: each object through its action's steps, journaled (I6).

Every step that sends a write is preceded by a journal row in `intent` (committed), and
followed by the answer's state, so a run killed at any instant resumes knowing which objects
may have been written. An `intent` (or `copied`) object is verified before anything is sent
again: the ACL read back, the copy or the source looked up with HEAD. Before acting, the
object's ETag must still be the audited one (else `changed-since-audit`: its verdict is
stale); a missing object is `gone`.

    private     HEAD, GET ?acl (journaled, to put back), PUT ?acl private
    quarantine  HEAD, GET ?acl, PUT copy (If-Match the audited ETag, private), DELETE source
    delete      HEAD, DELETE
    restore     undo a run (or what is in effect on a selection): the ACL put back; a
                quarantined copy copied back (with its ACL) and removed from quarantine; a
                deletion cannot be undone (skipped)

Workers take objects from one bounded stream; the first stop signal ends the feed and lets
objects already started finish.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import ObjectReceiveStream

from scanner.cos.objects import ObjectClient
from scanner.errors import AbandonedError, RemoteError
from scanner.store import ActRun, Entry, Store


@dataclass(frozen=True, slots=True)
class Place:
    """Where quarantine copies go: a bucket (empty: the scanned one) and a key prefix."""

    bucket: str
    prefix: str

    def key_of(self, key: str) -> str:
        return self.prefix + key

    @property
    def text(self) -> str:
        return f"{self.bucket}/{self.prefix}"


@dataclass
class ActProgress:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class _Stale(Exception):
    """The object is gone or changed since the audit: skip it with this reason."""


@dataclass
class _Worker:
    store: Store
    objects: ObjectClient
    run: ActRun
    place: Place | None
    progress: ActProgress

    async def mark(self, e: Entry, state: str, **kw: str | None) -> None:
        await self.store.mark(self.run.id, e.key, state, **kw)

    async def audited(self, e: Entry, key: str = "", bucket: str = "") -> None:
        head = await self.objects.head(key or e.key, bucket)
        if head is None:
            raise _Stale("gone")
        if head.etag != e.etag:
            raise _Stale("changed-since-audit")

    async def private(self, e: Entry) -> None:
        if e.state == "intent" and await self._private_holds(e):
            return await self.mark(e, "done", acted="private")
        await self.audited(e)
        prior = e.prior_acl or await self.objects.acl(e.key)
        await self.mark(e, "intent", prior_acl=prior)
        await self.objects.put_acl(e.key, "private")
        await self.mark(e, "done", acted="private")

    async def _private_holds(self, e: Entry) -> bool:
        """An unknown outcome: did the PUT land? An AllUsers grant says no; none, and no
        anonymous read either, says the object is out of public view (done)."""
        if await self.objects.acl(e.key) == "public-read":
            return False
        return not await self.objects.public(e.key)

    async def quarantine(self, e: Entry) -> None:
        assert self.place is not None
        dst = self.place.key_of(e.key)
        if e.state in ("intent", "copied") and await self._copy_exists(e, dst):
            return await self._drop_source(e, acted="quarantine")
        await self.audited(e)
        prior = e.prior_acl or await self._prior_acl(e)
        location = f"{self.place.bucket}/{dst}"
        await self.mark(e, "intent", prior_acl=prior, location=location)
        await self.objects.copy(
            e.key, dst, if_match=e.etag, dst_bucket=self.place.bucket, acl="private"
        )
        await self.mark(e, "copied")
        await self.objects.delete(e.key)
        await self.mark(e, "done", acted="quarantine")

    async def _prior_acl(self, e: Entry) -> str:
        """The ACL to put back on restore; `GET ?acl` cannot tell private from default, so an
        object a `private` run made private is private."""
        acl = await self.objects.acl(e.key)
        if acl == "default" and await self.store.acted_on(self.run.target, e.key) == "private":
            return "private"
        return acl

    async def _copy_exists(self, e: Entry, dst: str) -> bool:
        assert self.place is not None
        head = await self.objects.head(dst, self.place.bucket)
        return head is not None and head.etag == e.etag

    async def _drop_source(self, e: Entry, *, acted: str, bucket: str = "", key: str = "") -> None:
        """The copy is in place: delete the source (unless a lost answer already did)."""
        await self.mark(e, "copied")
        if await self.objects.head(key or e.key, bucket) is not None:
            await self.objects.delete(key or e.key, bucket)
        await self.mark(e, "done", acted=acted)

    async def delete(self, e: Entry) -> None:
        if e.state == "intent" and await self.objects.head(e.key) is None:
            return await self.mark(e, "done", acted="delete")
        await self.audited(e)
        await self.mark(e, "intent")
        await self.objects.delete(e.key)
        await self.mark(e, "done", acted="delete")

    async def restore(self, e: Entry) -> None:
        if e.undo_action == "private":
            await self.audited(e)
            await self.mark(e, "intent")
            await self.objects.put_acl(e.key, e.prior_acl or "default")
            return await self.mark(e, "done", acted="")
        if e.undo_action != "quarantine" or not e.location:
            raise _Stale("deleted-objects-cannot-be-restored")
        bucket, _, qkey = e.location.partition("/")
        if e.state in ("intent", "copied"):
            back = await self.objects.head(e.key)
            if back is not None and back.etag == e.etag:
                return await self._drop_source(e, acted="", bucket=bucket, key=qkey)
        await self.audited(e, qkey, bucket)
        await self.mark(e, "intent")
        await self.objects.copy(
            qkey, e.key, if_match=e.etag, src_bucket=bucket, acl=e.prior_acl or "default"
        )
        await self._drop_source(e, acted="", bucket=bucket, key=qkey)

    async def one(self, e: Entry) -> None:
        step: Callable[[Entry], Awaitable[None]] = getattr(self, self.run.action)
        try:
            await step(e)
        except _Stale as stale:
            await self.mark(e, "skipped", reason=str(stale))
            self._count("skipped", str(stale))
            return
        except AbandonedError:
            return  # stopping: its journal row says where it was; the next run goes on
        except RemoteError as exc:
            if not _per_object(exc):
                raise
            await self.mark(e, "failed", reason=exc.code or str(exc.status), message=str(exc))
            self._count("failed", exc.code or str(exc.status))
            return
        self.progress.done += 1

    def _count(self, state: str, reason: str) -> None:
        setattr(self.progress, state, getattr(self.progress, state) + 1)
        self.progress.reasons[f"{state}: {reason}"] = (
            self.progress.reasons.get(f"{state}: {reason}", 0) + 1
        )


def _per_object(exc: RemoteError) -> bool:
    """Errors about this object (a denied key, a failed precondition), not about the run."""
    return exc.status in (403, 404, 409, 412) and exc.code not in (
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "RequestTimeTooSkewed",
    )


async def apply_run(
    store: Store,
    objects: ObjectClient,
    run: ActRun,
    *,
    place: Place | None,
    workers: int,
    stop: anyio.Event,
    progress: ActProgress,
) -> bool:
    """Act on every open object of `run`; False when a stop ended it early."""
    worker = _Worker(store, objects, run, place, progress)
    entries_tx, entries_rx = anyio.create_memory_object_stream[Entry](workers)

    async def feed() -> None:
        async with entries_tx:
            async for chunk in store.iter_open(run.id):
                for e in chunk:
                    if stop.is_set():
                        return
                    await entries_tx.send(e)

    async def work(rx: ObjectReceiveStream[Entry]) -> None:
        async with rx:
            async for e in rx:
                if not stop.is_set():
                    await worker.one(e)

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        with entries_rx:
            for _ in range(workers):
                tg.start_soon(work, entries_rx.clone())
    return not stop.is_set()
