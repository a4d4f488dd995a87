"""Contents: which audited object holds given bytes (`contents`: content_hash -> key), so a
copy's verdict is found without auditing it again (`sharing`).

A scan alone on its bucket keeps the rows of its new verdicts in memory and writes them in
sorted bulk (`CONTENTS_FLUSH` at a time, when it publishes its claims, and at its end):
one index entry per verdict, written in every commit, was a random page per verdict.
`contents_pending` names a scan whose rows may be missing since when; if it dies, the next
scan to take a lease makes them again from its verdicts (`recover_contents`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from scanner.models import ObjectRef
from scanner.store.base import IN_JSON, HeldClaims
from scanner.store.migrate import content_hash

_DONORS = f"""
SELECT etag, size, policy, MIN(key) FROM verdicts
WHERE target = ? AND verdict_from IS NULL AND audited_at >= ? AND key IN (
    SELECT key FROM contents WHERE h IN {IN_JSON} UNION SELECT value FROM json_each(?))
GROUP BY etag, size, policy
"""


async def donors(
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
