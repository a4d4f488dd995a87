"""The act journal (I6): one row per object per action run, written before its request is sent
and after the answer, so a killed run resumes without repeating a completed action.

A run's rows start `pending`; `intent` means a request may have been sent (its outcome is
verified before anything is sent again); `copied` is a quarantine halfway (the copy exists,
the source is not deleted yet); `done`, `failed`, `skipped` and `conflict` are final
(`conflict`: another object came to the key meanwhile and was left alone; a quarantine's copy
stays restorable). `acted` holds what is in effect per object version (the last completed
action and its run, whose journal row has the version's ETag; a restore removes it), so a
second identical run selects nothing, and a new upload at the key is selected again.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from scanner.errors import StoreError
from scanner.models import split_target
from scanner.store.base import StoreBase
from scanner.store.report_rows import ReportFilter, current_view, skips_scan

_RUN_COLUMNS = "id, target, action, params, undoes, state, selected, started_at, finished_at"
OPEN_STATES = ("pending", "intent", "copied")
#: Rows whose object an undo can put back: done, or a quarantine whose source was re-uploaded.
UNDOABLE = "('done', 'conflict')"


@dataclass(frozen=True, slots=True)
class ActRun:
    id: int
    target: str
    action: str
    params: dict[str, Any]
    undoes: int | None
    state: str
    selected: int
    started_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One object of a run, as journaled."""

    key: str
    etag: str
    size: int
    state: str
    prior_acl: str | None = None
    location: str | None = None
    undo_action: str | None = None  # restore: the action to undo on this object
    version_id: str | None = None  # the version acted on (a bucket that keeps versions)


def _run(row: Any) -> ActRun:
    return ActRun(row[0], row[1], row[2], json.loads(row[3]), *row[4:])


class Journal(StoreBase):
    async def act_run(self, run_id: int) -> ActRun:
        row = await self._one(f"SELECT {_RUN_COLUMNS} FROM act_runs WHERE id = ?", (run_id,))
        if row is None:
            raise StoreError(f"no act run {run_id} in {self.path!r}")
        return _run(row)

    async def unfinished_run(
        self, target: str, action: str | None = None, params: dict[str, Any] | None = None
    ) -> ActRun | None:
        """The latest run of `target` (of this action and params, when given) not done."""
        sql = f"SELECT {_RUN_COLUMNS} FROM act_runs WHERE target = ? AND state <> 'done'"
        args: list[Any] = [target]
        if action is not None:
            sql += " AND action = ? AND params = ?"
            args += [action, json.dumps(params or {}, sort_keys=True)]
        row = await self._one(sql + " ORDER BY id DESC LIMIT 1", args)
        return _run(row) if row else None

    async def start_run(
        self,
        target: str,
        action: str,
        params: dict[str, Any],
        *,
        where: ReportFilter | None = None,
        undoes: int | None = None,
    ) -> int:
        """A new run and its objects, in one transaction (a kill never leaves a run without
        its selection): the target's audited verdicts `where` selects, less those the action
        is already in effect on; or, for a restore, what run `undoes` completed."""
        now = time.time()
        async with self._tx() as conn:
            cur = await conn.execute(
                "INSERT INTO act_runs (target, action, params, undoes, state, started_at, "
                "updated_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (target, action, json.dumps(params, sort_keys=True), undoes, now, now),
            )
            run_id = cur.lastrowid
            assert run_id is not None
            if undoes is not None:  # restore --run N
                cur = await conn.execute(
                    "INSERT INTO journal (run_id, key, etag, size, state, prior_acl, location, "
                    "undo_action, updated_at) SELECT ?, j.key, j.etag, j.size, 'pending', "
                    "j.prior_acl, j.location, r.action, ? FROM journal j JOIN act_runs r "
                    f"ON r.id = j.run_id WHERE j.run_id = ? AND j.state IN {UNDOABLE}",
                    (run_id, now, undoes),
                )
            elif action == "restore":  # restore by filter: what is in effect on the selection
                latest = await skips_scan(conn, target)
                view, args = current_view(target, latest, where or ReportFilter())
                cur = await conn.execute(
                    "INSERT INTO journal (run_id, key, etag, size, state, prior_acl, location, "
                    "undo_action, updated_at) SELECT ?, j.key, j.etag, j.size, 'pending', "
                    "j.prior_acl, j.location, a.action, ? FROM acted a JOIN journal j "
                    f"ON j.run_id = a.run_id AND j.key = a.key AND j.state IN {UNDOABLE} "
                    f"WHERE a.target = ? AND a.key IN (SELECT key FROM ({view}))",
                    [run_id, now, split_target(target)[0], *args],
                )
            else:
                latest = await skips_scan(conn, target)
                view, args = _selection(target, latest, action, where or ReportFilter())
                cur = await conn.execute(
                    "INSERT INTO journal (run_id, key, etag, size, state, updated_at) "
                    f"SELECT ?, key, etag, size, 'pending', ? FROM ({view})",
                    [run_id, now, *args],
                )
            await conn.execute(
                "UPDATE act_runs SET selected = ? WHERE id = ?", (cur.rowcount, run_id)
            )
        return run_id

    async def plan(
        self, target: str, latest_scan: int, action: str, where: ReportFilter, samples: int = 10
    ) -> dict[str, Any]:
        """What `select_into` would take: count, bytes, sample keys, and what it leaves out."""
        view, args = _selection(target, latest_scan, action, where)
        count, size = await self._one(
            f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM ({view})", args
        )
        keys = await self._all(f"SELECT key FROM ({view}) ORDER BY key LIMIT ?", [*args, samples])
        everything, everything_args = _selection(target, latest_scan, "", where)
        (total,) = await self._one(f"SELECT COUNT(*) FROM ({everything})", everything_args)
        labels = await self._all(
            f"SELECT COALESCE(label, ''), COUNT(*) FROM ({view}) GROUP BY 1 ORDER BY 2 DESC", args
        )
        again: list[Any] = []
        if action and action != "restore":  # selected again: a new upload since run N
            again = await self._all(
                f"SELECT a.run_id, COUNT(*) FROM ({view}) sel JOIN acted a ON a.target = ? "
                "AND a.key = sel.key AND a.action = ? GROUP BY a.run_id ORDER BY a.run_id",
                [*args, split_target(target)[0], action],
            )
        return {
            "objects": int(count),
            "bytes": int(size),
            "by_label": {str(label): int(n) for label, n in labels},
            "reuploaded": {int(run): int(n) for run, n in again},
            "samples": [k for (k,) in keys],
            "skipped": {
                ("nothing-to-undo" if action == "restore" else "already-acted-on"): int(total)
                - int(count)
            }
            if total > count
            else {},
        }

    async def undo_plan(self, run_id: int) -> dict[str, int]:
        """What `restore --run N` finds of run N's objects: still in effect (to restore), put
        back already (or acted on since), and deletions, which cannot be undone."""
        row = await self._one(
            "SELECT r.action, COUNT(*), COALESCE(SUM(j.size), 0), "
            "COALESCE(SUM(EXISTS (SELECT 1 FROM acted a WHERE a.key = j.key "
            "AND a.run_id = j.run_id)), 0) "
            f"FROM journal j JOIN act_runs r ON r.id = j.run_id WHERE j.run_id = ? "
            f"AND j.state IN {UNDOABLE}",
            (run_id,),
        )
        action, n, size, in_effect = str(row[0] or ""), int(row[1]), int(row[2]), int(row[3])
        if action == "delete":
            return {"to_restore": 0, "bytes": 0, "already_restored": 0, "deleted": n}
        return {"to_restore": in_effect, "bytes": size, "already_restored": n - in_effect,
                "deleted": 0}  # fmt: skip

    async def iter_open(self, run_id: int, chunk: int = 500) -> AsyncIterator[list[Entry]]:
        """The run's objects not final yet, in key order, `chunk` at a time."""
        after = ""
        while rows := await self._all(
            "SELECT key, etag, size, state, prior_acl, location, undo_action, version_id "
            "FROM journal WHERE run_id = ? "
            "AND state IN ('pending', 'intent', 'copied') AND key > ? ORDER BY key LIMIT ?",
            (run_id, after, chunk),
        ):
            yield [Entry(*r) for r in rows]
            after = rows[-1][0]

    async def list_keys(self, keys: Iterable[str]) -> None:
        """The keys a `keys` filter selects (`act --keys`), for this connection's queries."""
        async with self._tx() as conn:
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS listed_keys (key TEXT PRIMARY KEY) WITHOUT ROWID"
            )
            await conn.execute("DELETE FROM temp.listed_keys")
            await conn.executemany(
                "INSERT OR IGNORE INTO temp.listed_keys (key) VALUES (?)", ((k,) for k in keys)
            )

    async def open_count(self, run_id: int) -> int:
        """The run's objects not final yet."""
        row = await self._one(
            "SELECT COUNT(*) FROM journal WHERE run_id = ? AND state IN "
            "('pending', 'intent', 'copied')",
            (run_id,),
        )
        return int(row[0])

    async def unsettled_quarantines(self, target: str) -> list[tuple[int, Entry]]:
        """Quarantine rows of the target's runs that may have a copy in quarantine
        without the journal saying so: left in `intent` or `copied`, or failed after the copy
        (a run killed, or one that raced another before runs took a lease)."""
        rows = await self._all(
            "SELECT j.run_id, j.key, j.etag, j.size, j.state, j.prior_acl, j.location, "
            "j.undo_action, j.version_id FROM journal j JOIN act_runs r ON r.id = j.run_id "
            "WHERE r.target = ? AND r.action = 'quarantine' "
            "AND j.state IN ('intent', 'copied', 'failed') AND j.location IS NOT NULL "
            "ORDER BY j.run_id, j.key",
            (target,),
        )
        return [(int(r[0]), Entry(*r[1:])) for r in rows]

    async def mark(
        self,
        run_id: int,
        key: str,
        state: str,
        *,
        reason: str | None = None,
        message: str | None = None,
        prior_acl: str | None = None,
        location: str | None = None,
        acted: str | None = None,
        version_id: str | None = None,
    ) -> None:
        """One object's new state, in its own transaction (before a request, after an answer).
        `acted`: the action now in effect on the object ("" when a restore undid it)."""
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE journal SET state = ?, reason = COALESCE(?, reason), message = ?, "
                "prior_acl = COALESCE(?, prior_acl), location = COALESCE(?, location), "
                "version_id = COALESCE(?, version_id), updated_at = ? "
                "WHERE run_id = ? AND key = ?",
                (state, reason, message, prior_acl, location, version_id, time.time(), run_id,
                 key),
            )  # fmt: skip
            if acted is None:
                return
            target = (  # the bucket part of the run's target: acted rows belong to the bucket
                "(SELECT substr(target, 1, 6 + instr(substr(target, 7), '/')) FROM act_runs "
                "WHERE id = ?)"
            )
            if acted:
                await conn.execute(
                    "INSERT INTO acted (target, key, action, run_id) VALUES "
                    f"({target}, ?, ?, ?) ON CONFLICT (target, key) DO UPDATE SET "
                    "action = excluded.action, run_id = excluded.run_id",
                    (run_id, key, acted, run_id),
                )
            else:
                await conn.execute(
                    f"DELETE FROM acted WHERE target = {target} AND key = ?", (run_id, key)
                )

    async def acted_on(self, target: str, key: str) -> str:
        """The action in effect on the object ("" when none)."""
        row = await self._one(
            "SELECT action FROM acted WHERE target = ? AND key = ?", (split_target(target)[0], key)
        )
        return str(row[0]) if row else ""

    async def finish_run(self, run_id: int, state: str) -> None:
        now = time.time()
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE act_runs SET state = ?, updated_at = ?, "
                "finished_at = CASE WHEN ? = 'done' THEN ? ELSE finished_at END WHERE id = ?",
                (state, now, state, now, run_id),
            )

    async def resume_run(self, run_id: int) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE act_runs SET state = 'running', updated_at = ? WHERE id = ?",
                (time.time(), run_id),
            )

    async def run_tally(self, run_id: int) -> dict[str, dict[str, int]]:
        """The run's objects by state, and by reason for the skipped and failed ones."""
        rows = await self._all(
            "SELECT state, COALESCE(reason, ''), COUNT(*), COALESCE(SUM(size), 0) FROM journal "
            "WHERE run_id = ? GROUP BY state, reason",
            (run_id,),
        )
        out: dict[str, dict[str, int]] = {"states": {}, "reasons": {}, "bytes": {}}
        for state, reason, n, size in rows:
            out["states"][state] = out["states"].get(state, 0) + n
            out["bytes"][state] = out["bytes"].get(state, 0) + size
            if reason and state in ("skipped", "failed"):
                out["reasons"][f"{state}: {reason}"] = n
        return out


def _selection(
    target: str, latest_scan: int, action: str, where: ReportFilter
) -> tuple[str, list[Any]]:
    """SQL selecting (key, etag, size) of the audited verdicts `where` picks; with an action,
    less the objects an action is already in effect on."""
    view, args = current_view(target, latest_scan, where)
    sql = f"SELECT key, etag, size, label FROM ({view}) cur WHERE state = 'audited'"
    if action == "restore":  # what an action is in effect on
        sql += " AND EXISTS (SELECT 1 FROM acted a WHERE a.target = ? AND a.key = cur.key)"
        return sql, [*args, split_target(target)[0]]
    if action:  # the same action in effect on this version: nothing to do (a new upload is)
        sql += f" AND NOT EXISTS ({_ACTED_ON_VERSION})"
        args = [*args, split_target(target)[0], action]
    return sql, args


#: The action in effect on the very version `cur` names (key and ETag).
_ACTED_ON_VERSION = (
    "SELECT 1 FROM acted a JOIN journal j ON j.run_id = a.run_id AND j.key = a.key "
    "WHERE a.target = ? AND a.key = cur.key AND a.action = ? AND j.etag = cur.etag"
)
