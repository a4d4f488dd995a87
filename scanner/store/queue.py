"""The review queue: current verdicts to look at, filtered, in pages that stay fast at 10^6.

Result 2 (suspicious) first, then Result 1, highest score first, by key; each page continues
after the last row of the one before (keyset: result, score, key), never with OFFSET, so a
page costs the same at row 20 and at row 900,000 (index `verdicts_queue`). Counts and the
overview's aggregates use the same filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from scanner.models import key_range, split_target
from scanner.store.base import IN_JSON, StoreBase, within
from scanner.store.raws import unpack_raw
from scanner.store.review_claims import NOT_HELD

#: The order results are shown in (suspicious first: Tencent says a person has to look).
RESULT_ORDER = (2, 1, 0)
#: The queue's index holds flagged verdicts only (`WHERE result > 0`): SQLite uses it when
#: the query says so in these words.
_FLAGGED = " AND v.result > 0"


def _flagged(results: Sequence[int]) -> str:
    return _FLAGGED if all(r > 0 for r in results) else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    results: tuple[int, ...] = (2, 1)
    labels: tuple[str, ...] = ()
    sub_labels: tuple[str, ...] = ()
    min_score: int = 0
    max_score: int = 100
    prefix: str = ""
    decisions: tuple[str, ...] = ("undecided",)  # approve, block, skip, undecided; () = any
    frozen: bool | None = None
    acted: bool | None = False  # False: not acted on (the open queue); None: either
    gone: bool | None = False  # False: the object is still there; True: deleted since
    users: tuple[str, ...] = ()
    scan_id: int | None = None  # None: every current verdict of the target (the backlog)
    holder: str = ""  # a page: cards other pages hold (review_claims) are left out


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the next page starts after (result, score, key)."""

    result: int
    score: int
    key: str

    def encode(self) -> str:
        return json.dumps([self.result, self.score, self.key], ensure_ascii=False)

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        if not text:
            return None
        try:
            result, score, key = json.loads(text)
            return cls(int(result), int(score), str(key))
        except (ValueError, TypeError):
            raise ValueError("bad cursor") from None


_ROW = """
SELECT v.key, v.etag, v.size, v.result, v.label, v.sub_label, v.score, v.category,
       v.forbid_state, v.user_id, v.verdict_from, v.audited_at, v.scan_id, v.raw,
       d.decision, d.reviewer, d.decided_at, d.note,
       (SELECT action FROM acted a WHERE a.target = v.target AND a.key = v.key) AS acted,
       (SELECT last_modified FROM scan_objects o WHERE o.scan_id = v.scan_id AND o.key = v.key)
FROM verdicts v
LEFT JOIN decisions d ON d.target = v.target AND d.key = v.key AND d.etag = v.etag
"""
_FIELDS = ("key", "etag", "size", "result", "label", "sub_label", "score", "category",
           "forbid_state", "user", "verdict_from", "audited_at", "scan_id", "raw", "decision",
           "reviewer", "decided_at", "note", "acted", "last_modified")  # fmt: skip


def _where(target: str, f: QueueFilter) -> tuple[str, list[Any]]:
    scope, prefix = split_target(target)
    lo, hi = key_range(prefix + f.prefix)
    conds = ["v.target = ?", "v.key >= ?", "v.key < ?"]
    args: list[Any] = [scope, lo, hi]
    if f.gone is not None:
        conds.append("v.deleted_scan IS NOT NULL" if f.gone else "v.deleted_scan IS NULL")
    conds.append("v.score BETWEEN ? AND ?")
    args += [f.min_score, f.max_score]
    for column, values in (("v.label", f.labels), ("v.sub_label", f.sub_labels),
                           ("v.user_id", f.users)):  # fmt: skip
        if values:
            conds.append(f"{column} IN ({','.join('?' * len(values))})")
            args += list(values)
    if f.decisions:
        named = [d for d in f.decisions if d != "undecided"]
        either = [f"d.decision IN ({','.join('?' * len(named))})"] if named else []
        if "undecided" in f.decisions:
            either.append("d.decision IS NULL")
        conds.append(f"({' OR '.join(either)})")
        args += named
    if f.frozen is not None:
        conds.append("COALESCE(v.forbid_state, 0) > 0" if f.frozen else
                     "COALESCE(v.forbid_state, 0) = 0")  # fmt: skip
    if f.acted is not None:
        acted = "EXISTS (SELECT 1 FROM acted a WHERE a.target = v.target AND a.key = v.key)"
        conds.append(acted if f.acted else f"NOT {acted}")
    if f.scan_id is not None:
        conds.append("v.scan_id = ?")
        args.append(f.scan_id)
    where = " AND ".join(conds)
    if f.holder:
        where += NOT_HELD
        args += [f.holder, time.time()]
    return where, args


class Review(StoreBase):
    async def queue(
        self, target: str, where: QueueFilter, after: Cursor | None = None, limit: int = 60
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """One page of the queue and the cursor of the next (None: the queue ends here)."""
        cond, args = _where(target, where)
        order = [r for r in RESULT_ORDER if r in where.results]
        if after is not None:
            order = order[order.index(after.result) :] if after.result in order else []
        rows: list[dict[str, Any]] = []
        for result in order:
            sql = f"{_ROW} WHERE {cond} AND v.result = ?{_FLAGGED if result > 0 else ''}"
            more: list[Any] = [result]
            if after is not None and after.result == result:
                # the bound on score alone lets the index start there; the OR finishes the job
                sql += " AND v.score <= ? AND (v.score < ? OR v.key > ?)"
                more += [after.score, after.score, after.key]
            sql += " ORDER BY v.score DESC, v.key LIMIT ?"
            for row in await self._all(sql, [*args, *more, limit - len(rows)]):
                item = dict(zip(_FIELDS, row, strict=True))
                item["raw"] = unpack_raw(item["raw"])
                rows.append(item)
            if len(rows) >= limit:
                last = rows[-1]
                return rows, Cursor(int(last["result"]), int(last["score"]), str(last["key"]))
        return rows, None

    async def queue_counts(self, target: str, where: QueueFilter) -> dict[str, int]:
        """How many verdicts the filter selects, by result."""
        cond, args = _where(target, where)
        results = [r for r in RESULT_ORDER if r in where.results]
        if not results:
            return {}
        rows = await self._all(
            f"SELECT v.result, COUNT(*) FROM verdicts v LEFT JOIN decisions d ON "
            "d.target = v.target AND d.key = v.key AND d.etag = v.etag "
            f"WHERE {cond} AND v.result IN ({','.join('?' * len(results))}){_flagged(results)} "
            "GROUP BY v.result",
            [*args, *results],
        )
        return {str(r): int(n) for r, n in rows}

    async def filter_counts(self, target: str, where: QueueFilter) -> dict[str, int]:
        """What each choice of the decision, acted and gone filters would select, the other
        filters as they are: the numbers the page shows beside them (one pass)."""
        results = [r for r in RESULT_ORDER if r in where.results]
        if not results:
            return {}
        cond, args = _where(target, replace(where, decisions=(), acted=None, gone=None))
        rows = await self._all(
            "SELECT COALESCE(d.decision, 'undecided'), EXISTS (SELECT 1 FROM acted a WHERE "
            "a.target = v.target AND a.key = v.key), v.deleted_scan IS NOT NULL, COUNT(*) "
            "FROM verdicts v LEFT JOIN decisions d ON d.target = v.target AND d.key = v.key "
            f"AND d.etag = v.etag WHERE {cond} AND v.result IN "
            f"({','.join('?' * len(results))}){_flagged(results)} GROUP BY 1, 2, 3",
            [*args, *results],
        )

        def fits(wanted: bool | None, value: int) -> bool:
            return wanted is None or wanted == bool(value)

        decided = set(where.decisions)
        out: dict[str, int] = {"acted": 0, "gone": 0}
        for decision, acted, gone, n in rows:
            in_decision = not decided or decision in decided
            if fits(where.acted, acted) and fits(where.gone, gone):
                out[f"decision:{decision}"] = out.get(f"decision:{decision}", 0) + int(n)
            if in_decision and acted and fits(where.gone, gone):
                out["acted"] += int(n)
            if in_decision and gone:
                out["gone"] += int(n)
        return out

    async def overview(self, target: str, where: QueueFilter) -> dict[str, Any]:
        """What the overview draws: verdicts by label, a score histogram (10 bins), and per
        scan the images audited, flagged and paid for."""
        cond, args = _where(target, where)
        join = ("FROM verdicts v LEFT JOIN decisions d ON d.target = v.target AND "
                "d.key = v.key AND d.etag = v.etag")  # fmt: skip
        results = list(where.results) or [0, 1, 2]
        rin = f"v.result IN ({','.join('?' * len(results))}){_flagged(results)}"
        labels = await self._all(
            f"SELECT v.label, COUNT(*) {join} WHERE {cond} AND {rin} GROUP BY v.label "
            "ORDER BY COUNT(*) DESC",
            [*args, *results],
        )
        bins = await self._all(
            f"SELECT MIN(v.score / 10, 9), COUNT(*) {join} WHERE {cond} AND {rin} GROUP BY 1",
            [*args, *results],
        )
        histogram = [0] * 10
        for b, n in bins:
            histogram[int(b)] = int(n)
        scans = await self._all(
            "SELECT id, started_at, audited, flagged, review, audited - shared FROM scans "
            "WHERE target = ? ORDER BY id",
            (target,),
        )
        return {
            "labels": [[str(label), int(n)] for label, n in labels],
            "histogram": histogram,
            "scans": [
                {"scan": i, "started_at": t, "audited": a, "flagged": f, "review": r, "paid": p}
                for i, t, a, f, r, p in scans
            ],
        }

    async def card_states(self, target: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What the page shows of decided cards now: the decision, and what `act` did."""
        scope, _ = split_target(target)
        rows = await self._all(
            "SELECT v.key, d.decision, d.reviewer, d.decided_at, (SELECT action FROM acted a "
            "WHERE a.target = v.target AND a.key = v.key) FROM verdicts v LEFT JOIN decisions d "
            "ON d.target = v.target AND d.key = v.key AND d.etag = v.etag "
            f"WHERE v.target = ? AND v.key IN {IN_JSON}",
            (scope, json.dumps(list(keys)[:200])),
        )
        return {
            str(k): {"decision": d, "reviewer": r, "decided_at": t, "acted": a}
            for k, d, r, t, a in rows
        }

    async def has_verdict(self, target: str, key: str, etag: str) -> bool:
        """Whether `key` has a verdict of this ETag under the target (the review page shows
        only such objects' pictures)."""
        return await self.verdict_job(target, key, etag) is not None

    async def verdict_job(self, target: str, key: str, etag: str) -> str | None:
        """The JobId of `key`'s verdict of this ETag under the target ("" for none; None: no
        such verdict): a video's frames are asked of its job again, for fresh URLs."""
        cond, args = within(target)
        row = await self._one(
            f"SELECT job_id FROM verdicts WHERE {cond} AND key = ? AND etag = ?",
            [*args, key, etag],
        )
        return None if row is None else str(row[0] or "")

    async def queue_labels(self, target: str) -> dict[str, list[str]]:
        """The labels and sub-labels the target's verdicts carry (the filter's choices)."""
        scope, prefix = split_target(target)
        lo, hi = key_range(prefix)
        rows = await self._all(
            "SELECT DISTINCT label, sub_label FROM verdicts WHERE target = ? AND key >= ? AND "
            "key < ? AND result > 0",
            (scope, lo, hi),
        )
        return {
            "labels": sorted({str(label) for label, _ in rows if label}),
            "sub_labels": sorted({str(s) for _, s in rows if s}),
        }
