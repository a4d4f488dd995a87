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

Claims are rows of `claims` only while scans overlap. A scan that is the only live scan of
its bucket (the common case: one scan, or one nightly, per bucket) keeps them in memory: 2
rows written and deleted per image were a third of what the writer did. A scan that sees
another live scan of its bucket (in `admit`, or at its heartbeat) writes what it holds as rows
and marks its lease `published`, in one transaction, and claims in rows from then on; a scan
that sees a live scan of its bucket not yet published sends nothing (defers) until it is: it
cannot know what that one has in flight. A lease taken while another scan of the bucket is
live is published from the start (it holds nothing yet).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.models import ObjectRef, Target, content_key, split_target
from scanner.store.base import IN_JSON, HeldClaims, StoreBase
from scanner.store.migrate import content_hash

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
#: Claims on content (a copy in flight) sit beside claims on keys; no object key starts so.
CONTENT_CLAIM = "\x00content/"

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


_DONORS = f"""
SELECT etag, size, policy, MIN(key) FROM verdicts
WHERE target = ? AND verdict_from IS NULL AND audited_at >= ? AND key IN (
    SELECT key FROM contents WHERE h IN {IN_JSON} UNION SELECT value FROM json_each(?))
GROUP BY etag, size, policy
"""


async def _donors(
    conn: Any,
    scope: str,
    refs: Sequence[ObjectRef],
    since: float = 0.0,
    held: dict[int, list[str]] | None = None,
) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """(ETag, size) -> [(policy, key)] of the bucket's audited objects with the content of
    one of `refs` (one key per content and policy; copies' own verdicts are not donors):
    through `contents`, and the rows this scan holds in memory (`held`)."""
    donors: dict[tuple[str, int], list[tuple[str, str]]] = {}
    hashes = sorted({h for r in refs if (h := content_hash(scope, r.etag, r.size)) is not None})
    if not hashes:
        return donors
    buffered = [k for h in hashes for k in (held or {}).get(h, ())]
    async with conn.execute(
        _DONORS, (scope, since, json.dumps(hashes), json.dumps(buffered))
    ) as cur:
        async for etag, size, policy, key in cur:
            donors.setdefault((etag, int(size)), []).append((policy, key))
    return donors


#: A scan alone on its bucket adds its `contents` rows in bulk, this many at a time: sorted
#: inserts touch each page of the table once per flush, where a row per verdict rewrote a page
#: per verdict in every commit. (~2 MB of memory.)
CONTENTS_FLUSH = 10_000
_CONTENT_ROW = "INSERT OR IGNORE INTO contents (h, key) VALUES (?, ?)"


async def note_contents(
    conn: Any, held: HeldClaims, owner: str, rows: Sequence[tuple[int, str]], now: float
) -> None:
    """The `contents` rows (content_hash, key) of verdicts being recorded in this transaction
    (audited at `now`): kept in memory by a scan alone on its bucket (written at
    `CONTENTS_FLUSH` rows, when it publishes, and at its end), else written now."""
    if not rows:
        return
    if owner not in held.leased or owner in held.published:
        await conn.executemany(_CONTENT_ROW, rows)
        return
    buffer = held.contents.setdefault(owner, {})
    if not buffer:  # from now on, until the flush, its rows may be missing if it dies
        await conn.execute(
            "INSERT OR IGNORE INTO contents_pending (owner, since) VALUES (?, ?)", (owner, now)
        )
    for h, key in rows:
        buffer.setdefault(h, []).append(key)
    if len(buffer) >= CONTENTS_FLUSH:  # distinct contents: a count kept by the dict itself
        await flush_contents(conn, held, owner)


async def flush_contents(conn: Any, held: HeldClaims, owner: str) -> None:
    """Write what `owner` holds of `contents`, sorted (in the caller's transaction)."""
    buffer = held.contents.pop(owner, None)
    if buffer:
        await conn.executemany(_CONTENT_ROW, sorted((h, k) for h, ks in buffer.items() for k in ks))
    await conn.execute("DELETE FROM contents_pending WHERE owner = ?", (owner,))


_REBUILD = """
INSERT OR IGNORE INTO contents (h, key)
SELECT h, key FROM (
    SELECT content_hash(target, etag, size) AS h, key FROM verdicts
    WHERE audited_at >= ? AND verdict_from IS NULL
) WHERE h IS NOT NULL ORDER BY 1, 2
"""


async def recover_contents(
    conn: Any, alive_after: float, is_dead: Callable[[str, int], bool]
) -> int:
    """The `contents` rows a scan that died held in memory, made again from its verdicts (a
    pass over the verdicts table: only after a crash). A scan is dead when its lease is gone
    or stale, or its process is known gone (`is_dead(host, pid)`). How many there were."""
    async with conn.execute(
        "SELECT p.owner, p.since, l.host, l.pid, l.heartbeat_at FROM contents_pending p "
        "LEFT JOIN leases l ON l.owner = p.owner"
    ) as cur:
        dead = [
            (owner, since)
            async for owner, since, host, pid, beat in cur
            if beat is None or beat <= alive_after or is_dead(host, int(pid))
        ]
    for owner, since in dead:
        await conn.execute(_REBUILD, (since,))
        await conn.execute("DELETE FROM contents_pending WHERE owner = ?", (owner,))
    return len(dead)


_RELEASE = "DELETE FROM claims WHERE scope = ? AND key = ? AND owner = ?"


async def release_settled(
    conn: Any, held: HeldClaims, scope: str, owner: str, refs: Sequence[ObjectRef]
) -> None:
    """`owner`'s claims on objects whose outcome is being recorded (in the same transaction):
    their keys and their content are no longer in flight."""
    claims = [
        claim
        for ref in refs
        for claim in (ref.key, CONTENT_CLAIM + (content_key(ref.etag, ref.size) or ""))
    ]
    if owner in held.published:
        await conn.executemany(_RELEASE, [(scope, claim, owner) for claim in claims])
    elif owner in held.private:
        held.private[owner][1].difference_update(claims)


_LIVE_LEASES = "SELECT target, published FROM leases WHERE owner <> ? AND heartbeat_at > ?"


async def others_live(conn: Any, scope: str, owner: str, alive_after: float) -> tuple[bool, bool]:
    """(whether another live scan of the bucket `scope` holds a lease, whether one of them
    keeps its claims in memory still). Act leases claim nothing: not counted."""
    async with conn.execute(_LIVE_LEASES, (owner, alive_after)) as cur:
        flags = [
            bool(published)
            async for target, published in cur
            if not target.startswith("act:") and split_target(target)[0] == scope
        ]
    return bool(flags), not all(flags)


async def publish_claims(conn: Any, held: HeldClaims, owner: str, now: float) -> None:
    """From now on `owner` claims in rows: what it holds in memory (claims, `contents` rows)
    is written, its lease is marked published (one transaction: the caller's)."""
    scope, claims = held.private.pop(owner, ("", set()))
    held.published.add(owner)
    await flush_contents(conn, held, owner)
    await conn.executemany(_CLAIM, [(scope, c, owner, now) for c in sorted(claims)])
    await conn.execute("UPDATE leases SET published = 1 WHERE owner = ?", (owner,))


_CLAIM = (
    "INSERT INTO claims (scope, key, owner, claimed_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (scope, key) DO UPDATE SET owner = excluded.owner, "
    "claimed_at = excluded.claimed_at"
)


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
    donors = await _donors(conn, scope, copies, since, held)
    shares: list[tuple[ObjectRef, str]] = []
    for ref in copies:
        found = [
            key
            for policy, key in donors.get((ref.etag, ref.size), ())
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
            await self._claim(conn, scope, owner, unshared, dedupe, now, now - stale_after, out)
            await self._record_shared(conn, scan_id, scope, out.shared, now)
        return out

    async def _claim(
        self,
        conn: Any,
        scope: str,
        owner: str,
        refs: list[ObjectRef],
        dedupe: bool,
        now: float,
        alive_after: float,
        out: Admission,
    ) -> None:
        """Step 3: a key, or a copy of content, in another live scan's flight waits for its
        answer (deferred); the rest is claimed by `owner` and sent. (Claims in memory or in
        rows: the module docstring.)"""
        claims = {r.key: [r.key] for r in refs}
        for r in refs:
            content = content_key(r.etag, r.size) if dedupe else None
            if content is not None:
                claims[r.key].append(CONTENT_CLAIM + content)
        others, hidden = await others_live(conn, scope, owner, alive_after)
        if others and owner not in self._claims.published:
            await publish_claims(conn, self._claims, owner, now)
        if owner not in self._claims.published:  # alone: the claims stay in memory
            out.send = list(refs)
            mine = self._claims.private.setdefault(owner, (scope, set()))[1]
            mine.update(c for cs in claims.values() for c in cs)
            return
        if hidden:  # another scan's flight is not in rows yet: wait until it is
            out.deferred = len(refs)
            return
        held = await self._claimed_by_others(
            conn, scope, owner, sorted({c for cs in claims.values() for c in cs}), alive_after
        )
        out.send = [r for r in refs if not held.intersection(claims[r.key])]
        out.deferred = len(refs) - len(out.send)
        await conn.executemany(
            _CLAIM, [(scope, c, owner, now) for r in out.send for c in claims[r.key]]
        )

    @staticmethod
    async def _claimed_by_others(
        conn: Any, scope: str, owner: str, keys: list[str], alive_after: float
    ) -> set[str]:
        """Keys of `keys` claimed by another owner whose lease is alive."""
        if not keys:
            return set()
        async with conn.execute(
            f"SELECT c.key FROM claims c WHERE c.scope = ? AND c.key IN {IN_JSON} "
            "AND c.owner <> ? AND EXISTS (SELECT 1 FROM leases l WHERE l.owner = c.owner "
            "AND l.heartbeat_at > ?)",
            (scope, json.dumps(keys), owner, alive_after),
        ) as cur:
            return {row[0] async for row in cur}

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

    async def release_claims(self, owner: str) -> None:
        """A scan's end: whatever it still claimed is free (its objects stay pending), and so
        is what scans that died left behind (their owner holds no lease any more); the
        `contents` rows it held in memory are written."""
        self._claims.private.pop(owner, None)
        async with self._tx() as conn:
            await flush_contents(conn, self._claims, owner)
            self._claims.published.discard(owner)
            self._claims.leased.discard(owner)
            await conn.execute(
                "DELETE FROM claims WHERE owner = ? OR owner NOT IN (SELECT owner FROM leases)",
                (owner,),
            )
