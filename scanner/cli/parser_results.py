"""The flags of the commands that work on a scan's results: `review`, `status`, `report`
and `act` (split from parser.py, which keeps the top level, `scan` and the rest)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scanner.cli import act, report, review
from scanner.cli.argtypes import config_args, csv_words, filter_args, scan_id


def review_args(sub: Any) -> None:
    p = sub.add_parser(
        "review",
        help="a local web page to look at flagged images and decide (approve / block / skip)",
        description="Serve the review page for the store's target on 127.0.0.1 with a random "
        "access token (printed, and opened in a browser unless --no-browser).",
    )
    config_args(p)
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve (default 127.0.0.1; others warn; 0.0.0.0: every address, each "
        "printed)",
    )
    p.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the https://host/ a reverse proxy serves the page under (its Host and Origin "
        "are accepted, the printed URL uses it, the cookie is Secure for https)",
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--reviewer", default=None, help="who decides (default: the OS user)")
    p.set_defaults(run=review.run_review)


def target_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        default=None,
        metavar="ID",
        help="one of the store's targets (status lists them: cos://bucket.region/prefix, "
        "urls://...), for a copied store without a config",
    )


def status_args(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="progress of the current and past scans",
        description="Per scan: listed, audited, flagged, review, failed, skipped, "
        "pending, rate, elapsed and ETA.",
    )
    config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object per scan)")
    p.add_argument("--limit", type=int, default=20, help="how many recent scans (default 20)")
    p.add_argument("--urls", default=None, metavar="FILE", help="only the scans of this URL list")
    target_arg(p)
    p.set_defaults(run=report.run_status)


def act_args(sub: Any) -> None:
    p = sub.add_parser(
        "act",
        help="make flagged objects private, quarantine, delete or restore them (plan first)",
        description="Select stored verdicts with the report filters and apply one action to "
        "the objects: private (PUT ?acl), quarantine --to cos://bucket/prefix/ (server-side "
        "copy, then DELETE), delete (needs --confirm-delete), or restore --run N (undo a run). "
        "Without --apply, prints the plan. Every object is journaled before and after its "
        "request: a killed run resumes (run the same command again, or --resume) without "
        "repeating a completed action; an object whose ETag changed since its audit is skipped.",
    )
    config_args(p)
    p.add_argument(
        "action",
        choices=("private", "quarantine", "delete", "restore"),
        help="what to do to the selected objects",
    )
    filter_args(p)
    p.add_argument("--to", default=None, metavar="COS_URL", help="quarantine: cos://bucket/prefix/")
    p.add_argument(
        "--run",
        dest="undo_run",
        type=scan_id,
        default=None,
        metavar="N",
        help="restore: the act run to undo",
    )
    p.add_argument(
        "--keys",
        default=None,
        metavar="FILE",
        help="only these keys: one a line, or a CSV with a key column (a report export); - "
        "reads standard input; combines with the filters",
    )
    p.add_argument(
        "--all", action="store_true", help="restore: every action in effect on the target"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="restore: put objects back even where a newer object is at the key (after a "
        "person has looked; without it such objects are journaled conflict and kept)",
    )
    p.add_argument("--apply", action="store_true", help="do it (default: print the plan)")
    p.add_argument("--confirm-delete", action="store_true", help="delete: needed on top of --apply")
    p.add_argument("--resume", action="store_true", help="resume the target's unfinished act run")
    p.add_argument("--json", action="store_true", help="the plan or summary as JSON")
    p.set_defaults(run=act.run_act)


def report_args(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="export verdicts: csv, jsonl or a json summary",
        description="Export the current state of every key of the target (its latest verdict or "
        "failure, deletions, skips of the latest scan). Streams: constant memory at any size.",
        conflict_handler="resolve",
    )
    config_args(p)
    p.add_argument(
        "--store",
        action="append",
        default=argparse.SUPPRESS,
        help="SQLite store path (overrides [store] path); repeat to merge shard stores",
    )
    p.add_argument(
        "--urls", default=None, metavar="FILE", help="the URL list's rows (its own target)"
    )
    target_arg(p)
    p.add_argument(
        "--format",
        choices=("csv", "jsonl", "json"),
        default="csv",
        help="csv or jsonl rows, or a json summary of totals (default csv)",
    )
    filter_args(p)
    p.add_argument(
        "--state",
        type=csv_words,
        default=(),
        help="only these states: audited,failed,skipped,deleted,superseded",
    )
    p.add_argument(
        "--spend",
        action="store_true",
        help="what the service billed: images, units and price ([audit] unit_price, "
        "currency) per scan, UTC day or month (--by), copies saved and possible double "
        "billing apart",
    )
    p.add_argument(
        "--by", choices=("scan", "day", "month"), default="scan", help="--spend per (default scan)"
    )
    p.add_argument(
        "--by-user",
        action="store_true",
        help="uploaders ([scan] user_from_key) by flagged images and flagged share, "
        "instead of one row per key",
    )
    p.add_argument(
        "--min-flagged",
        type=int,
        default=0,
        metavar="N",
        help="--by-user: only uploaders with at least N flagged (Result 1) images: repeat "
        "offenders (then `act --user U`)",
    )
    p.add_argument(
        "--frames",
        action="store_true",
        help="the flagged frames, sound sections and pages of videos, voice notes and "
        "documents: one row each with its offset (ms), page, label, score and OCR or speech "
        "text (their urls are valid for 2 hours after the job's last query)",
    )
    p.add_argument(
        "--excel",
        action="store_true",
        help="--format csv for Excel: a UTF-8 byte order mark first, so Chinese and other "
        "non-ASCII keys show as they are (lines end CRLF either way)",
    )
    p.add_argument(
        "--history",
        action="store_true",
        help="also the verdicts that re-audits replaced (state superseded); "
        "default: one row per key, its latest outcome",
    )
    p.add_argument("--out", type=Path, default=None, help="write here instead of stdout")
    p.add_argument(
        "--presign",
        type=int,
        default=None,
        metavar="SECONDS",
        help="add a signed GET URL per object, valid for SECONDS",
    )
    p.set_defaults(run=report.run_report)
