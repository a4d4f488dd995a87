"""Copies in flight: identical content sent once per scan pass, its verdict shared by the rest.

The store settles copies whose content already has a verdict (`Store.admit`). What is left is
content being audited right now: the first object of a content key goes to the batcher, and
copies that arrive while it is in flight wait here, unsent and still pending in the store.
When the writer has committed the first one's outcome, `settle` hands back the waiting copies
with the shared verdict (or the same final failure). A retryable failure releases them instead:
they stay pending and a later pass admits them again. Nothing here outlives the pass, so a
crash or a stop can never leave a copy waiting for a verdict that was lost: it is still
pending in the store, and the next run admits it again.

The content key includes the object's policy fingerprint (a GIF option applies to GIFs only),
so a copy only ever shares a verdict made under the policy that holds for it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable

from scanner.models import ImageVerdict, ObjectRef, content_key

WAIT = "wait"


def shared_verdict(verdict: ImageVerdict, ref: ObjectRef, donor: str) -> ImageVerdict:
    """`verdict` (of `donor`) as a copy's: unbilled, and not frozen by the service."""
    return dataclasses.replace(
        verdict,
        key=ref.key,
        data_id="",
        forbid_state=None,
        maybe_double=False,
        shared_from=donor,
    )


class Copies:
    """Content in flight in this pass, and the verdicts it recently got (bounded).

    The recent verdicts only bridge the moment between the writer's commit and the next store
    lookup (an admission already past its lookup): later copies find the verdict in the store.
    So a few thousand are plenty; a verdict holds its raw answer (~1-3 KB), and 100,000 of
    them were 300 MB of memory and a tenth of the CPU in garbage collection."""

    def __init__(
        self, policy_of: Callable[[ObjectRef], str], *, enabled: bool, remember: int = 512
    ) -> None:
        self._policy_of = policy_of
        self.enabled = enabled
        self._remember = remember
        self._inflight: dict[str, tuple[str, list[ObjectRef]]] = {}
        self._held: set[str] = set()  # keys of the copies waiting in `_inflight`
        self._resolved: OrderedDict[str, tuple[str, ImageVerdict]] = OrderedDict()

    def _key(self, ref: ObjectRef) -> str | None:
        if not self.enabled:
            return None
        content = content_key(ref.etag, ref.size)
        return None if content is None else f"{content}|{self._policy_of(ref)}"

    def route(self, ref: ObjectRef) -> ImageVerdict | str | None:
        """None: send it (it audits its content); WAIT: a copy of content in flight (or the
        object in flight itself, routed again); or the shared verdict of content this pass
        audited a moment ago."""
        key = self._key(ref)
        if key is None:
            return None
        done = self._resolved.get(key)
        if done is not None:  # the object itself, met again: its own outcome is written
            return WAIT if done[0] == ref.key else shared_verdict(done[1], ref, done[0])
        flying = self._inflight.get(key)
        if flying is None:
            self._inflight[key] = (ref.key, [])
            return None
        if flying[0] != ref.key and ref.key not in self._held:  # once per key (a resume's
            flying[1].append(ref)  # stored jobs are admitted first, then met again pending)
            self._held.add(ref.key)
        return WAIT

    def holds(self, ref: ObjectRef) -> bool:
        """Whether `ref` waits for a copy's outcome (so it must not be sent)."""
        return ref.key in self._held

    def forget(self, ref: ObjectRef) -> None:
        """`ref` was routed to be sent but was not (a full job queue): its content is no
        longer in flight, and the copies that waited for it are admitted again later."""
        key = self._key(ref)
        flying = self._inflight.get(key) if key is not None else None
        if key is not None and flying is not None and flying[0] == ref.key:
            del self._inflight[key]
            self._held.difference_update(w.key for w in flying[1])

    def settle(self, ref: ObjectRef, verdict: ImageVerdict) -> list[tuple[ObjectRef, ImageVerdict]]:
        """The committed outcome of an audited object: the copies that waited for it, with
        their shared outcome (none when the outcome is a retryable failure: they stay pending)."""
        key = self._key(ref)
        if key is None:
            return []
        flying = self._inflight.get(key)
        if flying is None or flying[0] != ref.key:
            return []
        del self._inflight[key]
        self._held.difference_update(w.key for w in flying[1])
        if verdict.failed and verdict.retryable:
            return []
        self._resolved[key] = (ref.key, verdict)
        if len(self._resolved) > self._remember:
            self._resolved.popitem(last=False)
        return [(w, shared_verdict(verdict, w, ref.key)) for w in flying[1]]

    @property
    def waiting(self) -> int:
        return sum(len(w) for _, w in self._inflight.values())
