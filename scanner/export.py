"""Report rows written out: csv (RFC 4180, formula-safe) or jsonl, streamed in chunks."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from scanner.audit.findings import FIELDS as FRAME_FIELDS
from scanner.audit.findings import findings
from scanner.audit.raw import raw_to_dict
from scanner.media import IMAGE, class_of

log = logging.getLogger(__name__)

#: The columns of csv/jsonl reports: a contract (consumers ignore unknown fields).
FIELDS = (
    "key",
    "etag",
    "size",
    "state",
    "reason",
    "message",
    "result",
    "label",
    "score",
    "category",
    "sub_label",
    "job_id",
    "audited_at",
    "scan_id",
    "forbid_state",
    "user",
    "verdict_from",  # a copy's verdict: the key whose audit it shares (empty: audited itself)
    "decision",  # a reviewer's: approve, block or skip (empty: undecided)
    "reviewer",
    "decided_at",
    "note",  # the reviewer's note with the decision
    "action",  # what `act` did and is in effect: private, quarantine, delete (empty: nothing)
    "acted_at",
    "act_run",  # the act run that did it (`act` journal)
)
#: Added after FIELDS (columns are only ever appended): image, video, audio or document.
MEDIA = "media"


#: What a spreadsheet takes for a formula at the start of a cell (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?\Z")  # a plain number is no formula (-65010, a CI code)


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: text that a spreadsheet would run as a formula gets a leading
    `'` (keys are user uploads and the CSV goes to spreadsheets); numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def row_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A store report row (REPORT_COLUMNS) as the report's fields (without the raw verdict)."""
    out = dict(zip(FIELDS, row[: len(FIELDS)], strict=True))
    for stamp in ("audited_at", "decided_at", "acted_at"):
        out[stamp] = _iso(out[stamp])
    out["media"] = class_of(out["key"]) or ""
    return out


async def write_rows(
    chunks: AsyncGenerator[list[tuple[Any, ...]], None],
    out: TextIO,
    fmt: str,
    link: Callable[[str], str] | None = None,
) -> int:
    """Stream report rows to `out` as csv or jsonl; returns how many were written.

    `chunks` is closed here even when a write fails (a full disk, a closed pipe), so the
    store's cursor is released before the store is."""
    writer = None
    if fmt == "csv":
        # RFC 4180 line ends: a key with a bare \r (COS allows it) is quoted, not split
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([*FIELDS, MEDIA, "url"] if link else [*FIELDS, MEDIA])
    count = unreadable = 0
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            for row in chunk:
                record = row_dict(row)
                if link is not None:
                    record["url"] = link(record["key"])
                if writer is not None:
                    writer.writerow([csv_cell(v) for v in record.values()])
                else:
                    raw = row[len(FIELDS)]
                    try:
                        record["verdict"] = raw_to_dict(raw) if raw else None
                    except ValueError:  # a damaged store row: export the rest, say so below
                        record["verdict"] = None
                        unreadable += 1
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    if unreadable:
        log.warning(
            "%d rows hold a stored verdict that is not a readable answer (XML or JSON); "
            "exported with verdict null",
            unreadable,
        )
    return count


async def write_frames(
    chunks: AsyncGenerator[list[tuple[Any, ...]], None], out: TextIO, fmt: str
) -> int:
    """`report --frames`: the flagged frames, sections and pages of the media objects among
    the report rows, one row each (csv, jsonl, or one json list); returns how many."""
    head = ("key", MEDIA, "job_id", *FRAME_FIELDS)
    writer = csv.writer(out, lineterminator="\r\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(head)
    rows: list[dict[str, Any]] = []
    count = 0
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            for row in chunk:
                record = row_dict(row)
                raw = row[len(FIELDS)]
                if record[MEDIA] in (IMAGE, "") or not raw:
                    continue
                for found in findings(raw):
                    item = {"key": record["key"], MEDIA: record[MEDIA],
                            "job_id": record["job_id"], **found}  # fmt: skip
                    count += 1
                    if writer is not None:
                        item["keywords"] = ",".join(item["keywords"])
                        writer.writerow([csv_cell(item[h]) for h in head])
                    elif fmt == "json":
                        rows.append(item)
                    else:
                        out.write(json.dumps(item, ensure_ascii=False) + "\n")
    if fmt == "json":
        out.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    return count


def write_users(users: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    """`report --by-user`: uploaders by flagged images, as csv, jsonl or one json list."""
    if fmt == "json":
        out.write(json.dumps(users, indent=2, ensure_ascii=False) + "\n")
        return
    if fmt == "jsonl":
        out.writelines(json.dumps(u, ensure_ascii=False) + "\n" for u in users)
        return
    fields = ("user", "audited", "flagged", "review", "flagged_share", "max_flagged_score")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    writer.writerows([csv_cell(u[f]) for f in fields] for u in users)
