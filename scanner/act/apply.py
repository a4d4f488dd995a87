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
from dataclasses import dataclass, field, replace

import anyio
from anyio.abc import ObjectReceiveStream

from scanner.cos.objects import Head, ObjectClient
from scanner.errors import AbandonedError, AuthError, RemoteError, ServiceError
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
    conflict: int = 0
    total: int | None = None  # the run's open objects, once known (% and ETA)
    reasons: dict[str, int] = field(default_factory=dict)


class _Stale(Exception):
    """The object is gone or changed since the audit: skip it with this reason."""


class _Conflict(Exception):
    """Another object is at the key now: it is left alone (final state `conflict`)."""


RE_UPLOADED = "re-uploaded"
NEWER_AT_KEY = "newer object at the key"


@dataclass
class _Worker:
    store: Store
    objects: ObjectClient
    run: ActRun
    place: Place | None
    progress: ActProgress
    versioned: bool = False  # the bucket keeps versions: act on exactly the audited one
    overwrite: bool = False  # restore --overwrite: put back even over a newer object
    denied: int = 0  # objects refused with 403 AccessDenied so far

    async def mark(self, e: Entry, state: str, **kw: str | None) -> None:
        await self.store.mark(self.run.id, e.key, state, **kw)

    async def audited(
        self, e: Entry, key: str = "", bucket: str = "", version_id: str | None = None
    ) -> Head:
        """The object still as audited (the same ETag), or `_Stale`; of version
        `version_id` when given (a newer upload at the key does not hide it)."""
        head = await self.objects.head(key or e.key, bucket, version_id or "")
        if head is None:
            raise _Stale("gone")
        if head.etag != e.etag:
            raise _Stale("changed-since-audit")
        return head

    def _version(self, head: Head) -> str | None:
        """The version to act on: the audited one's id on a bucket that keeps versions."""
        return head.version_id if self.versioned and head.version_id else None

    async def private(self, e: Entry) -> None:
        if e.state == "intent":
            head = await self.objects.head(e.key)
            if head is None:
                raise _Stale("gone")
            if head.etag == e.etag and await self._private_holds(e):
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
            await self.mark(e, "copied")
            return await self._remove_audited(e, acted="quarantine")
        head = await self.audited(e, version_id=e.version_id if self.versioned else None)
        version = self._version(head)
        prior = e.prior_acl or await self._prior_acl(e)
        location = f"{self.place.bucket}/{dst}"
        await self.mark(e, "intent", prior_acl=prior, location=location, version_id=version)
        try:
            await self.objects.copy(
                e.key, dst, if_match=e.etag, dst_bucket=self.place.bucket, acl="private",
                src_version=version or "",
            )  # fmt: skip
        except ServiceError as exc:
            if exc.status == 412:  # the source changed after the HEAD: not the audited object
                raise _Stale("changed-since-audit") from None
            raise
        await self.mark(e, "copied")
        await self._remove_audited(replace(e, version_id=version), acted="quarantine")

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

    async def _remove_audited(self, e: Entry, *, acted: str) -> None:
        """Delete the audited version from the key, and only it: on a bucket that keeps
        versions, by its id; else only while the key still holds its ETag (a HEAD right before
        the DELETE). Another object there now is a re-upload: left alone (`conflict`)."""
        if e.version_id and self.versioned:
            await self.objects.delete(e.key, version_id=e.version_id)
            return await self.mark(e, "done", acted=acted)
        head = await self.objects.head(e.key)
        if head is not None and head.etag != e.etag:
            return await self.mark(e, "conflict", reason=RE_UPLOADED, acted=acted)
        if head is not None:
            await self.objects.delete(e.key)
        await self.mark(e, "done", acted=acted)

    async def delete(self, e: Entry) -> None:
        if e.state == "intent":
            return await self._remove_audited(e, acted="delete")
        head = await self.audited(e)
        version = self._version(head)
        await self.mark(e, "intent", version_id=version)
        await self._remove_audited(replace(e, version_id=version), acted="delete")

    async def restore(self, e: Entry) -> None:
        if e.undo_action == "private":
            head = await self.objects.head(e.key)
            if head is None:
                raise _Stale("gone")
            if head.etag != e.etag:  # the ACL of another object is not ours to change
                raise _Conflict(NEWER_AT_KEY)
            await self.mark(e, "intent")
            await self.objects.put_acl(e.key, e.prior_acl or "default")
            return await self.mark(e, "done", acted="")
        if e.undo_action != "quarantine" or not e.location:
            raise _Stale("deleted-objects-cannot-be-restored")
        await self._put_back(e)

    async def _put_back(self, e: Entry) -> None:
        """A quarantined object back at its key, only where the key is empty (a HEAD right
        before; the copy also asks COS to refuse an existing key) unless --overwrite."""
        assert e.location is not None
        bucket, _, qkey = e.location.partition("/")
        here = await self.objects.head(e.key)
        if here is not None and here.etag == e.etag:  # back already (a lost answer, or ours)
            if e.state == "pending" and await self.objects.head(qkey, bucket) is None:
                raise _Stale("already-restored")
            return await self._drop_copy(e, bucket, qkey)
        if here is not None and not self.overwrite:
            raise _Conflict(NEWER_AT_KEY)
        await self.audited(e, qkey, bucket)  # the copy in quarantine is still the object
        await self.mark(e, "intent")
        try:
            await self.objects.copy(
                qkey, e.key, if_match=e.etag, src_bucket=bucket, acl=e.prior_acl or "default",
                forbid_overwrite=not self.overwrite,
            )  # fmt: skip
        except RemoteError as exc:
            if exc.status == 409 and exc.code == "FileAlreadyExists":
                raise _Conflict(NEWER_AT_KEY) from None
            raise
        await self._drop_copy(e, bucket, qkey)

    async def _drop_copy(self, e: Entry, bucket: str, qkey: str) -> None:
        await self.mark(e, "copied")
        if await self.objects.head(qkey, bucket) is not None:
            await self.objects.delete(qkey, bucket)
        await self.mark(e, "done", acted="")

    async def one(self, e: Entry) -> None:
        step: Callable[[Entry], Awaitable[None]] = getattr(self, self.run.action)
        try:
            await step(e)
        except _Stale as stale:
            await self.mark(e, "skipped", reason=str(stale))
            self._count("skipped", str(stale))
            return
        except _Conflict as conflict:
            await self.mark(e, "conflict", reason=str(conflict))
            self._count("conflict", str(conflict))
            return
        except AbandonedError:
            return  # stopping: its journal row says where it was; the next run goes on
        except RemoteError as exc:
            if not await self._about_the_object(exc, e):
                raise  # nothing else can succeed either: the run stops, the rest untouched
            await self.mark(e, "failed", reason=exc.code or str(exc.status), message=str(exc))
            self._count("failed", exc.code or str(exc.status))
            return
        self.progress.done += 1

    async def _about_the_object(self, exc: RemoteError, e: Entry) -> bool:
        """Whether `exc` is about this object (a denied key, a failed precondition) rather
        than the run: refused credentials stop it, and so does permission denied on the first
        objects tried with none done. A HEAD's 403 has no body to say which (reference 14.4):
        a GET ?acl of the same object asks again."""
        if exc.status not in (403, 404, 409, 412) or exc.code in REFUSED:
            return False
        if exc.status == 403 and not exc.code:
            try:
                await self.objects.acl(e.key)
            except RemoteError as again:
                return again.status == 403 and again.code not in REFUSED and bool(again.code)
        if exc.status == 403:
            self.denied += 1
            if self.denied >= DENIED_BEFORE_STOP and self.progress.done == 0:
                raise AuthError(
                    "cos", f"permission denied on the first {self.denied} objects tried "
                    f"({exc.code}): check the credentials' policy", status=403, code=exc.code,
                ) from exc  # fmt: skip
        return True

    def _count(self, state: str, reason: str) -> None:
        setattr(self.progress, state, getattr(self.progress, state) + 1)
        self.progress.reasons[f"{state}: {reason}"] = (
            self.progress.reasons.get(f"{state}: {reason}", 0) + 1
        )


#: Codes that say the credentials are refused: no request of the run can succeed.
REFUSED = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "RequestTimeTooSkewed",
     "InvalidSecretId", "InvalidToken", "TokenExpired"}
)  # fmt: skip
#: Permission denied on this many objects, none done: the policy denies the action itself.
DENIED_BEFORE_STOP = 10


async def apply_run(
    store: Store,
    objects: ObjectClient,
    run: ActRun,
    *,
    place: Place | None,
    workers: int,
    stop: anyio.Event,
    progress: ActProgress,
    versioned: bool = False,
    overwrite: bool = False,
) -> bool:
    """Act on every open object of `run`; False when a stop ended it early."""
    worker = _Worker(store, objects, run, place, progress, versioned, overwrite)
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


async def reconcile(
    store: Store, objects: ObjectClient, target: str, but: int, versioned: bool
) -> int:
    """Before a run: settle the quarantine rows runs (but run `but`, resumed now) left open
    or failed after their
    copy, from HEADs of the copy and the source, so that whatever sits in quarantine is
    journaled restorable (done, or `conflict` where the key was re-uploaded) and nothing is
    stranded there. A row whose copy is absent is left as it is (nothing was moved); one whose
    source is still the audited object is `copied` (its own run finishes the move). Returns
    how many rows changed."""
    changed = 0
    for run, e in await store.unsettled_quarantines(target):
        assert e.location is not None
        bucket, _, qkey = e.location.partition("/")
        if run == but:
            continue
        copy = await objects.head(qkey, bucket)
        if copy is None or copy.etag != e.etag:
            continue
        # where the bucket keeps versions, the audited version itself; else the key
        version = e.version_id if versioned and e.version_id else ""
        source = await objects.head(e.key, version_id=version)
        if source is not None and source.etag == e.etag:
            state, reason = "copied", None
        elif source is None:
            state, reason = "done", None
        else:
            state, reason = "conflict", RE_UPLOADED
        if state != e.state:
            acted = "quarantine" if state != "copied" else None
            await store.mark(run, e.key, state, reason=reason, acted=acted)
            changed += 1
    return changed
