"""Sharing: what a scan need not pay for, decided when its objects are admitted to audit.

Verdicts belong to the bucket, not to the target that produced them. Before a scan sends a
group of objects, `admit` (one transaction) settles each one:
- its own key already has a verdict for the same ETag and size under a policy that still
  holds (any scan of the bucket made it: another target's, or one running beside this one;
  a `--force` scan takes only verdicts made since it started): recorded as audited, nothing
  sent;
- a copy: another key of the bucket with the same content (ETag, size) was audited under a
  policy that holds for this object: its verdict is copied (`verdict_from` names that key);
- another live scan has claimed the key, or its content (it is in that scan's flight):
  deferred, left pending, admitted again on a later pass, by when that scan's verdict is
  there to take;
- otherwise claimed for this scan and sent. A claim ends when the key's outcome is written;
  a claim whose owner holds no live lease is stale and taken over.

(Claims: `claims`; the index of audited contents: `contents`.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.models import ObjectRef, Target, content_key
from scanner.store.base import IN_JSON, StoreBase
from scanner.store.claims import claim
from scanner.store.contents import donors

_SHARE_VERDICT = """
INSERT INTO verdicts (target, key, etag, size, policy, result, label, score, category, sub_label,
                      text, job_id, raw, audited_at, scan_id, forbid_state, user_id, verdict_from)
SELECT target, ?, etag, size, policy, result, label, score, category, sub_label, text, job_id,
       raw, ?, ?, NULL, ?, key
FROM verdicts WHERE target = ? AND key = ?
ON CONFLICT (target, key) DO UPDATE SET
    etag = excluded.etag, size = excluded.size, policy = excluded.policy,
    result = excluded.result, label = excluded.label, score = excluded.score,
    category = excluded.category, sub_label = excluded.sub_label, text = excluded.text,
    job_id = excluded.job_id, raw = excluded.raw, audited_at = excluded.audited_at,
    scan_id = excluded.scan_id, deleted_scan = NULL, forbid_state = NULL,
    user_id = excluded.user_id, verdict_from = excluded.verdict_from
"""

_AUDITED = (
    "UPDATE scan_objects SET state = 'audited', reason = NULL, message = NULL "
    "WHERE scan_id = ? AND key = ? AND state = 'pending'"
)


@dataclass
class Admission:
    """How `admit` settled a group of objects."""

    send: list[ObjectRef] = field(default_factory=list)
    shared: list[tuple[ObjectRef, int, str | None]] = field(default_factory=list)  # result, from
    deferred: int = 0


async def _own(conn: Any, scope: str, keys: Sequence[str], since: float) -> dict[str, Any]:
    """key -> (etag, size, policy, result, verdict_from) of the keys' own verdicts."""
    async with conn.execute(
        "SELECT key, etag, size, policy, result, verdict_from FROM verdicts "
        f"WHERE target = ? AND key IN {IN_JSON} AND audited_at >= ?",
        (scope, json.dumps(keys), since),
    ) as cur:
        return {row[0]: row[1:] async for row in cur}


async def _own_verdicts(
    conn: Any,
    scope: str,
    refs: Sequence[ObjectRef],
    since: float,
    holds: Callable[[str, ObjectRef], bool],
    out: Admission,
) -> list[ObjectRef]:
    """Step 1: keys whose own verdict (same ETag and size, a policy that holds) stands are
    settled as shared; the rest is returned."""
    own = await _own(conn, scope, [r.key for r in refs], since)
    rest: list[ObjectRef] = []
    for ref in refs:
        got = own.get(ref.key)
        if got and got[0] == ref.etag and got[1] == ref.size and holds(got[2], ref):
            out.shared.append((ref, int(got[3]), got[4]))
        else:
            rest.append(ref)
    return rest


async def _audited_copies(
    conn: Any,
    scope: str,
    copies: list[ObjectRef],
    since: float,
    holds: Callable[[str, ObjectRef], bool],
    held: dict[int, list[str]] | None = None,
) -> list[tuple[ObjectRef, str]]:
    """Step 2: which of `copies` have content audited under another key: (ref, donor key)."""
    audited = await donors(conn, scope, copies, since, held)
    shares: list[tuple[ObjectRef, str]] = []
    for ref in copies:
        found = [
            key
            for policy, key in audited.get((ref.etag, ref.size), ())
            if key != ref.key and holds(policy, ref)
        ]
        if found:
            shares.append((ref, found[0]))
    return shares


async def _share(
    conn: Any,
    scan_id: int,
    scope: str,
    shares: list[tuple[ObjectRef, str]],
    now: float,
    user: Callable[[ObjectRef], str] | None,
    out: Admission,
) -> None:
    """Copy each donor's verdict to its copy's key; settle the copies as shared."""
    await conn.executemany(
        _SHARE_VERDICT,
        [
            (ref.key, now, scan_id, (user(ref) if user else "") or None, scope, donor)
            for ref, donor in shares
        ],
    )
    async with conn.execute(
        f"SELECT key, result FROM verdicts WHERE target = ? AND key IN {IN_JSON}",
        (scope, json.dumps([ref.key for ref, _ in shares])),
    ) as cur:
        results = {k: int(r) async for k, r in cur}
    out.shared += [(ref, results[ref.key], donor) for ref, donor in shares]


class Sharing(StoreBase):
    async def admit(
        self,
        scan_id: int,
        target: Target,
        owner: str,
        refs: Sequence[ObjectRef],
        *,
        since: float = 0.0,
        holds: Callable[[str, ObjectRef], bool],
        dedupe: bool,
        stale_after: float,
        user: Callable[[ObjectRef], str] | None = None,
    ) -> Admission:
        """Settle `refs` (pending objects of scan `scan_id`) as the module docstring says.

        `holds(policy, ref)`: whether a verdict made under `policy` stands for `ref`."""
        out = Admission()
        if not refs:
            return out
        scope, now = target.scope, time.time()
        async with self._tx() as conn:
            rest = await _own_verdicts(conn, scope, refs, since, holds, out)
            copies = [r for r in rest if dedupe and content_key(r.etag, r.size)]
            held = self._claims.contents.get(owner)
            shares = await _audited_copies(conn, scope, copies, since, holds, held)
            if shares:
                await _share(conn, scan_id, scope, shares, now, user, out)
            shared = {ref.key for ref, _ in shares}
            unshared = [r for r in rest if r.key not in shared]
            out.send, out.deferred = await claim(
                conn, self._claims, scope, owner, unshared, dedupe, now, now - stale_after
            )
            await self._record_shared(conn, scan_id, scope, out.shared, now)
        return out

    @staticmethod
    async def _record_shared(
        conn: Any,
        scan_id: int,
        scope: str,
        shared: list[tuple[ObjectRef, int, str | None]],
        now: float,
    ) -> None:
        if not shared:
            return
        await conn.executemany(_AUDITED, [(scan_id, ref.key) for ref, _, _ in shared])
        await conn.executemany(
            "DELETE FROM failures WHERE target = ? AND key = ?",
            [(scope, ref.key) for ref, _, _ in shared],
        )
        n = len(shared)
        flagged = sum(1 for _, result, _ in shared if result == 1)
        review = sum(1 for _, result, _ in shared if result == 2)
        await conn.execute(
            "UPDATE scans SET audited = audited + ?, flagged = flagged + ?, review = review + ?, "
            "run_audited = run_audited + ?, shared = shared + ?, updated_at = ? WHERE id = ?",
            (n, flagged, review, n, n, now, scan_id),
        )

    async def reusable(
        self,
        target: Target,
        refs: Sequence[ObjectRef],
        holds: Callable[[str, ObjectRef], bool],
        *,
        since: float = 0.0,
        dedupe: bool = True,
    ) -> tuple[set[str], set[str]]:
        """What `admit` would take from the store, read only (for the dry run): the keys whose
        own verdict stands, and the keys that are copies of audited content."""
        probe = Admission()  # admit's first two steps, read only
        rest = await _own_verdicts(self._conn, target.scope, refs, since, holds, probe)
        mine = {ref.key for ref, _, _ in probe.shared}
        candidates = [r for r in rest if dedupe and content_key(r.etag, r.size)]
        shares = await _audited_copies(self._conn, target.scope, candidates, since, holds)
        copies = {ref.key for ref, _ in shares}
        return mine, copies
