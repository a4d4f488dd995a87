"""Reports: the current state of every key of a target, one row each, filtered and streamed."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from scanner.errors import StoreError
from scanner.models import key_range, split_target
from scanner.store.base import StoreBase, within
from scanner.store.raws import unpack_raw


class Reports(StoreBase):
    async def targets(self) -> list[str]:
        return [r[0] for r in await self._all("SELECT DISTINCT target FROM scans ORDER BY target")]

    async def name_users(self, user: Callable[[str], str]) -> None:
        """Reports name each verdict's uploader by `user(key)` (`[scan] user_from_key` as it is
        now: verdicts stored before it was set, or under another pattern, get theirs too)."""
        await self._conn.create_function(
            "key_user", 2, lambda key, _stored: user(key) or None, deterministic=True
        )

    async def labels_known(self, target: str) -> set[str]:
        """Every Label the target's verdicts carry."""
        cond, args = within(target)
        rows = await self._all(f"SELECT DISTINCT label FROM verdicts WHERE {cond}", args)
        return {str(r[0]) for r in rows}

    def _view(self, target: str, latest_scan: int, where: ReportFilter) -> tuple[str, list[Any]]:
        return current_view(target, latest_scan, where)

    async def latest_scan_id(self, target: str) -> int:
        """The target's newest scan (0: none)."""
        row = await self._one("SELECT MAX(id) FROM scans WHERE target = ?", (target,))
        return int(row[0] or 0)

    async def skips_scan_id(self, target: str) -> int:
        """The scan whose skipped objects the target's reports show (`skips_scan`)."""
        return await skips_scan(self._conn, target)

    async def iter_report(
        self, target: str, where: ReportFilter, chunk: int = 1000
    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """Report rows (REPORT_COLUMNS) in key order, `chunk` at a time: constant memory."""
        sql, args = self._view(target, await skips_scan(self._conn, target), where)
        try:
            async with self._conn.execute(sql + " ORDER BY key, audited_at", args) as cur:
                while rows := await cur.fetchmany(chunk):
                    yield [(*r[:-1], unpack_raw(r[-1])) for r in rows]
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path!r}: {exc}") from exc

    async def by_user(
        self, target: str, where: ReportFilter, limit: int = 1000, *, min_flagged: int = 0
    ) -> list[dict[str, Any]]:
        """Uploaders by flagged images (then flagged share): what their audited images got;
        with `min_flagged`, only those with at least that many Result 1 images."""
        sql, args = self._view(target, await skips_scan(self._conn, target), where)
        rows = await self._all(
            "SELECT user_id, COUNT(*), SUM(result = 1), SUM(result = 2), "
            "MAX(CASE WHEN result > 0 THEN score END) "
            f"FROM ({sql}) WHERE state = 'audited' AND user_id IS NOT NULL GROUP BY user_id "
            "HAVING SUM(result = 1) >= ? "
            "ORDER BY SUM(result = 1) DESC, 1.0 * SUM(result = 1) / COUNT(*) DESC, user_id "
            "LIMIT ?",
            [*args, min_flagged, limit],
        )
        return [
            {"user": u, "audited": n, "flagged": f, "review": r,
             "flagged_share": round(f / n, 4) if n else 0.0, "max_flagged_score": top}
            for u, n, f, r, top in rows
        ]  # fmt: skip

    async def report_totals(self, target: str, where: ReportFilter) -> dict[str, Any]:
        """Totals of the filtered report rows by state, result, label, category and scan."""
        sql, args = self._view(target, await skips_scan(self._conn, target), where)
        out: dict[str, Any] = {}
        for name, column in (
            ("by_state", "state"),
            ("by_result", "result"),
            ("by_label", "label"),
            ("by_category", "category"),
            ("by_scan", "scan_id"),
        ):
            rows = await self._all(
                f"SELECT {column}, COUNT(*) FROM ({sql}) GROUP BY {column} ORDER BY {column}", args
            )
            out[name] = {("" if k is None else str(k)): int(n) for k, n in rows}
        out["rows"] = sum(out["by_state"].values())
        return out


#: The scan whose skipped objects a report shows: the newest of the target that listed its
#: whole input (a scan that failed before listing, or a retry pass, lists nothing new: the
#: skipped rows of the one before stand), else the newest that listed anything.
_SKIPS_SCAN = """
SELECT COALESCE(
    (SELECT MAX(id) FROM scans WHERE target = ?1 AND listing_done = 1 AND mode <> 'retry-failed'),
    (SELECT MAX(id) FROM scans WHERE target = ?1 AND listed > 0),
    0)
"""


async def skips_scan(conn: Any, target: str) -> int:
    """The id of the target's scan whose skipped objects its reports show (0: none)."""
    async with conn.execute(_SKIPS_SCAN, (target,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


REPORT_COLUMNS = (
    "key, etag, size, state, reason, message, result, label, score, category, sub_label, job_id, "
    "audited_at, scan_id, forbid_state, user_id, verdict_from, decision, reviewer, decided_at, "
    "note, action, acted_at, act_run, raw"
)
# A key's latest outcome: a failure (newer than any verdict: audits delete failures), else its
# verdict; deleted keys keep their last outcome with state 'deleted'; plus what the latest scan
# skipped for a reason other than 'unchanged', unless the key has a verdict or failure (a key
# skipped after a policy change, e.g. LargeImageDetect turned off, keeps its latest verdict).
_CURRENT_VIEW = """
SELECT v.key, v.etag, v.size,
       CASE WHEN v.deleted_scan IS NULL THEN 'audited' ELSE 'deleted' END AS state,
       CASE WHEN v.deleted_scan IS NULL THEN NULL ELSE 'deleted' END AS reason, NULL AS message,
       v.result, v.label, v.score, v.category, v.sub_label, v.job_id, v.audited_at,
       COALESCE(v.deleted_scan, v.scan_id) AS scan_id, v.forbid_state,
       key_user(v.key, v.user_id) AS user_id, v.verdict_from,
       d.decision, d.reviewer, d.decided_at, d.note,
       a.action, j.updated_at AS acted_at, a.run_id AS act_run, v.raw
FROM verdicts v
LEFT JOIN decisions d ON d.target = v.target AND d.key = v.key AND d.etag = v.etag
LEFT JOIN acted a ON a.target = v.target AND a.key = v.key
LEFT JOIN journal j ON j.run_id = a.run_id AND j.key = a.key
WHERE v.target = ? AND v.key >= ? AND v.key < ?
  AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.target = v.target AND f.key = v.key)
UNION ALL
SELECT f.key, f.etag, f.size,
       CASE WHEN f.deleted_scan IS NULL THEN 'failed' ELSE 'deleted' END, f.code, f.message,
       NULL, NULL, NULL, NULL, NULL, NULL, f.failed_at, COALESCE(f.deleted_scan, f.scan_id), NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM failures f WHERE f.target = ? AND f.key >= ? AND f.key < ?
UNION ALL
SELECT o.key, o.etag, o.size, 'skipped', o.reason, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, o.scan_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM scan_objects o
WHERE o.scan_id = ? AND o.state = 'skipped' AND o.reason <> 'unchanged'
  AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.target = ? AND v.key = o.key)
  AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.target = ? AND f.key = o.key)
"""
_HISTORY = """
UNION ALL
SELECT h.key, h.etag, h.size, 'superseded', NULL, NULL, h.result, h.label, h.score, h.category,
       h.sub_label, h.job_id, h.audited_at, h.scan_id, NULL, NULL, h.verdict_from, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, h.raw
FROM verdict_history h WHERE h.target = ? AND h.key >= ? AND h.key < ?
"""


def current_view(target: str, latest_scan: int, where: ReportFilter) -> tuple[str, list[Any]]:
    """The current state of every key of a target, one row each (with `history`, also every
    verdict a re-audit replaced, state 'superseded'), filtered: SQL and its arguments."""
    view = _CURRENT_VIEW + (_HISTORY if where.history else "")
    sql = f"SELECT {REPORT_COLUMNS} FROM ({view}) WHERE 1 = 1"
    scope, prefix = split_target(target)
    keys = [scope, *key_range(prefix)]
    args: list[Any] = [*keys, *keys, latest_scan, scope, scope] + (keys if where.history else [])
    conds, more = where.sql()
    return sql + conds, args + more


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFilter:
    results: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    min_score: int | None = None
    max_score: int | None = None
    prefix: str = ""  # only keys under it
    frozen: bool | None = None  # only frozen at audit time (True) or not (False)
    users: tuple[str, ...] = ()  # only these uploaders ([scan] user_from_key)
    states: tuple[str, ...] = ()
    scan_id: int | None = None
    since: float | None = None  # unix time; rows audited (or failed) at or after it
    history: bool = False  # also the verdicts re-audits replaced
    decisions: tuple[str, ...] = ()  # approve, block, skip, undecided (a review decision)
    keys: str = ""  # a key list's SHA-256 (`act --keys`): only its keys (`Journal.list_keys`)

    def _decided(self, args: list[Any]) -> str:
        named = [d for d in self.decisions if d != "undecided"]
        either = [f"decision IN ({','.join('?' * len(named))})"] if named else []
        if "undecided" in self.decisions:  # only verdicts can be decided
            either.append("(decision IS NULL AND state = 'audited')")
        args.extend(named)
        return f"({' OR '.join(either)})"

    def sql(self) -> tuple[str, list[Any]]:
        conds: list[str] = []
        args: list[Any] = []
        for column, values in (
            ("result", self.results),
            ("label", self.labels),
            ("state", self.states),
            ("user_id", self.users),
        ):
            if values:
                conds.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if self.decisions:
            conds.append(self._decided(args))
        for cond, value in (
            ("score >= ?", self.min_score),
            ("score <= ?", self.max_score),
            ("scan_id = ?", self.scan_id),
            ("audited_at >= ?", self.since),
        ):
            if value is not None:
                conds.append(cond)
                args.append(value)
        if self.prefix:  # a range, so the key index serves it (LIKE would need escaping)
            conds.append("key >= ? AND key < ?")
            args.extend([self.prefix, self.prefix + "\U0010ffff"])
        if self.frozen is not None:
            conds.append(
                "COALESCE(forbid_state, 0) > 0" if self.frozen else "COALESCE(forbid_state, 0) = 0"
            )
        if self.keys:
            conds.append("key IN (SELECT key FROM temp.listed_keys)")
        return "".join(f" AND {c}" for c in conds), args
