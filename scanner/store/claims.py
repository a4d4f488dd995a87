"""Claims: the keys (and contents) a scan has in flight, so that another live scan of the
bucket waits for their verdicts instead of sending them too (`sharing` admits through them).

Claims are rows of `claims` only while scans overlap. A scan that is the only live scan of
its bucket (the common case: one scan, or one nightly, per bucket) keeps them in memory
(`HeldClaims`): 2 rows written and deleted per image were a third of what the writer did. A
scan that sees another live scan of its bucket (at admission, or at its heartbeat) writes what
it holds as rows and marks its lease `published`, in one transaction, and claims in rows from
then on; a scan that sees a live scan of its bucket not yet published sends nothing (defers)
until it is: it cannot know what that one has in flight. A lease taken while another scan of
the bucket is live is published from the start (it holds nothing yet). A claim ends when the
key's outcome is written; a claim whose owner holds no live lease is stale and taken over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from scanner.models import ObjectRef, content_key, split_target
from scanner.store.base import IN_JSON, HeldClaims, StoreBase
from scanner.store.contents import flush_contents

#: Claims on content (a copy in flight) sit beside claims on keys; no object key starts so.
CONTENT_CLAIM = "\x00content/"

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


async def claim(
    conn: Any,
    held: HeldClaims,
    scope: str,
    owner: str,
    refs: list[ObjectRef],
    dedupe: bool,
    now: float,
    alive_after: float,
) -> tuple[list[ObjectRef], int]:
    """A key, or a copy of content, in another live scan's flight waits for its answer
    (deferred); the rest is claimed by `owner` and sent: (to send, how many deferred)."""
    claims = {r.key: [r.key] for r in refs}
    for r in refs:
        content = content_key(r.etag, r.size) if dedupe else None
        if content is not None:
            claims[r.key].append(CONTENT_CLAIM + content)
    others, hidden = await others_live(conn, scope, owner, alive_after)
    if others and owner not in held.published:
        await publish_claims(conn, held, owner, now)
    if owner not in held.published:  # alone: the claims stay in memory
        mine = held.private.setdefault(owner, (scope, set()))[1]
        mine.update(c for cs in claims.values() for c in cs)
        return list(refs), 0
    if hidden:  # another scan's flight is not in rows yet: wait until it is
        return [], len(refs)
    taken = await _claimed_by_others(
        conn, scope, owner, sorted({c for cs in claims.values() for c in cs}), alive_after
    )
    send = [r for r in refs if not taken.intersection(claims[r.key])]
    await conn.executemany(_CLAIM, [(scope, c, owner, now) for r in send for c in claims[r.key]])
    return send, len(refs) - len(send)


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


class Claims(StoreBase):
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
