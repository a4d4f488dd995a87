"""Cards held for the reviewer who has them on screen (`review_claims`, schema 13): a page
claims the cards it shows for `[review] claim_minutes`; another page's queue leaves them out
until they are decided (released) or the claim expires. A page renews its claims while it is
open. Claims are by page (a browser tab), so one reviewer in two tabs gets disjoint cards too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from scanner.models import split_target
from scanner.store.base import IN_JSON, StoreBase

#: The queue's condition that leaves out cards another page holds (arguments: holder, now).
NOT_HELD = (
    " AND NOT EXISTS (SELECT 1 FROM review_claims c WHERE c.target = v.target AND "
    "c.key = v.key AND c.holder <> ? AND c.expires_at > ?)"
)


class ReviewClaims(StoreBase):
    async def claim_cards(
        self,
        target: str,
        keys: Sequence[str],
        holder: str,
        reviewer: str,
        seconds: float,
        *,
        release_others: bool = False,
    ) -> set[str]:
        """Hold `keys` for `holder` for `seconds`; the ones it got (a card another page took
        meanwhile is not among them). With `release_others`, the holder's other claims go
        (a new first page: the cards before it are off the screen)."""
        scope, _ = split_target(target)
        now = time.time()
        async with self._tx() as conn:
            if release_others:
                await conn.execute("DELETE FROM review_claims WHERE holder = ?", (holder,))
            await conn.executemany(
                "INSERT INTO review_claims (target, key, holder, reviewer, expires_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, key) DO UPDATE SET "
                "holder = excluded.holder, reviewer = excluded.reviewer, "
                "expires_at = excluded.expires_at "
                "WHERE review_claims.holder = excluded.holder OR review_claims.expires_at <= ?",
                [(scope, k, holder, reviewer, now + seconds, now) for k in keys],
            )
            async with conn.execute(
                "SELECT key FROM review_claims WHERE target = ? AND holder = ? AND key IN "
                f"{IN_JSON}",
                (scope, holder, json.dumps(list(keys))),
            ) as cur:
                return {str(r[0]) for r in await cur.fetchall()}

    async def renew_claims(self, holder: str, seconds: float) -> int:
        """The holder's page is still open: its claims last `seconds` from now."""
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE review_claims SET expires_at = ? WHERE holder = ?",
                (time.time() + seconds, holder),
            )
            return int(cur.rowcount)

    async def release_cards(self, target: str, keys: Sequence[str], holder: str) -> None:
        """Decided (or left): the cards are no longer held."""
        scope, _ = split_target(target)
        async with self._tx() as conn:
            await conn.executemany(
                "DELETE FROM review_claims WHERE target = ? AND key = ? AND holder = ?",
                [(scope, k, holder) for k in keys],
            )
