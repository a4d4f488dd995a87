"""Decisions: what a reviewer said of a verdict (approve / block / skip), with history.

`decide` logs each decision and sets the key's current one in one short transaction, so two
reviewers on the same store lose nothing (the later write wins, both are in the log). A
decision is bound to the ETag of the verdict it was made on; one made on an ETag the verdict
no longer has is refused (`stale`), and a changed object is undecided again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scanner.models import split_target
from scanner.store.base import StoreBase, within

DECISIONS = ("approve", "block", "skip")


@dataclass(frozen=True, slots=True)
class Decided:
    """What `decide` did: keys set, and keys refused because their verdict changed or is gone."""

    applied: tuple[str, ...]
    stale: tuple[str, ...]


def flagged_verdicts(target: str) -> tuple[str, list[Any]]:
    """`FROM ... WHERE ...` of the target's live Result 1 and 2 verdicts (`v`), each with its
    decision on its current ETag (`d`, NULL: undecided): the review queue's rows."""
    cond, args = within(target, "v")
    return (
        "FROM verdicts v LEFT JOIN decisions d "
        "ON d.target = v.target AND d.key = v.key AND d.etag = v.etag "
        f"WHERE {cond} AND v.result > 0 AND v.deleted_scan IS NULL",
        args,
    )


class Decisions(StoreBase):
    async def decide(
        self,
        target: str,
        items: Sequence[tuple[str, str]],
        decision: str,
        reviewer: str,
        note: str = "",
    ) -> Decided:
        """Decide (key, etag) pairs; `decision` "undecided" clears them (an undo)."""
        if decision not in (*DECISIONS, "undecided"):
            raise ValueError(f"unknown decision {decision!r}")
        scope, _ = split_target(target)
        now = time.time()
        applied: list[str] = []
        stale: list[str] = []
        async with self._tx() as conn:
            for key, etag in items:
                async with conn.execute(
                    "SELECT etag FROM verdicts WHERE target = ? AND key = ?", (scope, key)
                ) as cur:
                    row = await cur.fetchone()
                if row is None or row[0] != etag:
                    stale.append(key)
                    continue
                await conn.execute(
                    "INSERT INTO decision_log (target, key, etag, decision, reviewer, note, "
                    "decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (scope, key, etag, decision, reviewer, note, now),
                )
                if decision == "undecided":
                    await conn.execute(
                        "DELETE FROM decisions WHERE target = ? AND key = ?", (scope, key)
                    )
                else:
                    await conn.execute(
                        "INSERT INTO decisions (target, key, etag, decision, reviewer, note, "
                        "decided_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, key) DO "
                        "UPDATE SET etag = excluded.etag, decision = excluded.decision, "
                        "reviewer = excluded.reviewer, note = excluded.note, "
                        "decided_at = excluded.decided_at",
                        (scope, key, etag, decision, reviewer, note, now),
                    )
                applied.append(key)
        return Decided(tuple(applied), tuple(stale))

    async def with_copies(
        self, target: str, items: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """`items` and every copy of their content (the audited key and the keys sharing its
        verdict, `verdict_from`), each with its own verdict's ETag."""
        scope, _ = split_target(target)
        out = dict(items)
        for key, _etag in items:
            row = await self._one(
                "SELECT COALESCE(verdict_from, key) FROM verdicts WHERE target = ? AND key = ?",
                (scope, key),
            )
            if row is None:
                continue
            rows = await self._all(
                "SELECT key, etag FROM verdicts WHERE target = ? AND (key = ? OR verdict_from = ?)",
                (scope, row[0], row[0]),
            )
            for k, e in rows:
                out.setdefault(k, e)
        return list(out.items())

    async def previous_decision(self, target: str, key: str, etag: str) -> str:
        """What the key's decision was before its latest one on this ETag ("undecided" when
        none): what an undo goes back to."""
        scope, _ = split_target(target)
        rows = await self._all(
            "SELECT decision FROM decision_log WHERE target = ? AND key = ? AND etag = ? "
            "ORDER BY id DESC LIMIT 2",
            (scope, key, etag),
        )
        return str(rows[1][0]) if len(rows) == 2 else "undecided"

    async def decision_history(self, target: str, key: str) -> list[tuple[str, str, str, float]]:
        """(decision, reviewer, etag, time) of every decision on a key, oldest first."""
        scope, _ = split_target(target)
        rows = await self._all(
            "SELECT decision, reviewer, etag, decided_at FROM decision_log "
            "WHERE target = ? AND key = ? ORDER BY id",
            (scope, key),
        )
        return [(str(d), str(r), str(e), float(t)) for d, r, e, t in rows]

    async def review_counts(self, target: str) -> dict[str, int]:
        """Flagged and suspicious verdicts under the target: decided (on their current ETag)
        by decision, and still to review."""
        flagged, args = flagged_verdicts(target)
        rows = await self._all(
            f"SELECT COALESCE(d.decision, 'undecided'), COUNT(*) {flagged} GROUP BY 1", args
        )
        counts = {str(d): int(n) for d, n in rows}
        return {
            "reviewed": sum(n for d, n in counts.items() if d != "undecided"),
            "to_review": counts.get("undecided", 0),
            **{d: counts.get(d, 0) for d in DECISIONS},
        }

    async def reviewer_figures(self, target: str) -> list[dict[str, Any]]:
        """Per reviewer, from the decision log of the target's current verdicts: decisions,
        decisions per hour (over the span from their first to their last, at least a minute),
        and the share of approves and blocks that agree with the service (a block of a Result
        1 or 2, an approve of a Result 0)."""
        cond, args = within(target, "l")
        rows = await self._all(
            "SELECT l.reviewer, COUNT(*), MIN(l.decided_at), MAX(l.decided_at), "
            "SUM((l.decision = 'block' AND v.result > 0) OR (l.decision = 'approve' AND "
            "v.result = 0)), SUM(l.decision IN ('approve', 'block')) "
            "FROM decision_log l JOIN verdicts v ON v.target = l.target AND v.key = l.key AND "
            f"v.etag = l.etag WHERE {cond} AND l.decision <> 'undecided' "
            "GROUP BY l.reviewer ORDER BY COUNT(*) DESC",
            args,
        )
        return [
            {"reviewer": r, "decisions": int(n), "first": first, "last": last,
             "per_hour": round(n * 3600 / max(60.0, last - first), 1),
             "agree_share": round(agree / judged, 3) if judged else None}
            for r, n, first, last, agree, judged in rows
        ]  # fmt: skip
