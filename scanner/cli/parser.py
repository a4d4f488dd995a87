"""The command line's arguments: one parser, a subparser per command, one-line usage errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.cli import act, check, commands, emulator, report, review, scan
from scanner.cli.argtypes import csv_words, filter_args, metrics_args, scan_id


class UsageError(Exception):
    """Bad command-line usage (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, no usage dump
        command = self.prog.removeprefix("cos-scanner").strip()  # "scan", or "" at the top
        raise UsageError(f"cos-scanner: {command + ': ' if command else ''}{message}")


def _emulator_args(sub: Any) -> None:
    p = sub.add_parser(
        "emulator",
        help="serve the local COS + CI emulator",
        description="Serve an emulator of the COS ListObjects and CI batch image auditing APIs.",
    )
    emulator.arguments(p)
    _log_args(p, sub=True)
    p.set_defaults(run=emulator.run_emulator)


def _global_args(p: argparse.ArgumentParser, *, sub: bool) -> None:
    """Options accepted before or after the subcommand. On a subcommand their default is
    SUPPRESS, so one given before the subcommand is not reset by the subcommand's parser."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    p.add_argument(
        "--config",
        type=Path,
        default=default(None),
        help="TOML config file (default: $COS_SCANNER_CONFIG, else ./config.toml if present)",
    )
    p.add_argument(
        "--store", default=default(None), help="SQLite store path (overrides [store] path)"
    )
    _log_args(p, sub=sub)


def _log_args(p: argparse.ArgumentParser, *, sub: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    p.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log details"
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("text"),
        help="text lines, or one JSON event per line (for log pipelines)",
    )


def _config_args(p: argparse.ArgumentParser) -> None:
    _global_args(p, sub=True)


def _scan_args(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="scan the configured target, or resume its unfinished scan",
        description="List the bucket, audit every image in batches under the configured limits "
        "and checkpoint every object in SQLite. Resumes an unfinished scan of the same target.",
    )
    _config_args(p)
    p.add_argument("--prefix", default=None, help="only keys under this prefix ([cos] prefix)")
    p.add_argument(
        "--urls",
        default=None,
        metavar="FILE",
        help="audit the images at these URLs instead of the bucket: one URL per line, or CSV "
        "with a url column; - for standard input. A target of its own (resumable)",
    )
    p.add_argument(
        "--inventory",
        default=None,
        metavar="MANIFEST",
        help="read the objects from a COS Inventory instead of listing the bucket: "
        "cos://<bucket>/<path>/manifest.json or a local manifest.json (checked; resumable)",
    )
    p.add_argument(
        "--max-images",
        type=int,
        default=None,
        metavar="N",
        help="bill at most N images in this run, then pause (resumable)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="i/N",
        help="scan only the keys whose hash is i mod N, with 1/N of the quota and a store of "
        "its own (N machines: a Kubernetes Indexed Job, deploy/kubernetes/shards.yaml)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="make the audit requests in N processes (default: enough for what the budget "
        "can ask, ~5,000 images/s each, at most the CPU count); one lister, one writer",
    )
    p.add_argument(
        "--window",
        default=None,
        metavar="HH:MM-HH:MM",
        help="audit only inside this daily window of local time ([scan] window)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--incremental",
        action="store_true",
        help="nightly rescan: audit only new, changed, retryably failed or re-policied keys",
    )
    mode.add_argument(
        "--full", action="store_true", help="a full scan even if [scan] incremental is set"
    )
    mode.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-audit exactly the objects whose last attempt failed",
    )
    mode.add_argument(  # one mode a scan: --incremental --force and the like are usage errors
        "--force",
        action="store_true",
        help="start a new full scan that re-audits everything (bills again), abandoning an "
        "unfinished scan of the target instead of resuming it",
    )
    mode.add_argument(
        "--abandon",
        action="store_true",
        help="drop the target's unfinished scans (saying what each leaves unaudited) and "
        "exit; their verdicts stay",
    )
    p.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="write the final summary JSON here (default: <store>.summary.json)",
    )

    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print exactly what this scan would send and bill (images, bytes, skips, "
        "billed units, price, duration), with the same flags; writes and bills nothing",
    )
    p.add_argument(
        "--json", action="store_true", help="with --dry-run: the estimate as one JSON object"
    )
    metrics_args(p)
    p.set_defaults(run=scan.run_scan)


def _check_args(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="audit one image now (a key of the bucket, or a URL) and print its verdict",
        description="Audit one image through the CI single-image API, or IMS with [audit] "
        "service = ims, and print the verdict. With --store it is kept like a scan's verdict.",
    )
    _config_args(p)
    p.add_argument(
        "image", metavar="KEY|URL", help="an object key of the bucket, or an http(s) URL"
    )
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    p.set_defaults(run=check.run_check)


def _review_args(sub: Any) -> None:
    p = sub.add_parser(
        "review",
        help="a local web page to look at flagged images and decide (approve / block / skip)",
        description="Serve the review page for the store's target on 127.0.0.1 with a random "
        "access token (printed, and opened in a browser unless --no-browser).",
    )
    _config_args(p)
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


def _status_args(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="progress of the current and past scans",
        description="Per scan: listed, audited, flagged, review, failed, skipped, "
        "pending, rate, elapsed and ETA.",
    )
    _config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object per scan)")
    p.add_argument("--limit", type=int, default=20, help="how many recent scans (default 20)")
    p.add_argument("--urls", default=None, metavar="FILE", help="only the scans of this URL list")
    p.add_argument(
        "--target",
        default=None,
        metavar="ID",
        help="one of the store's targets (status lists them: cos://bucket.region/prefix, "
        "urls://...), for a copied store without a config",
    )
    p.set_defaults(run=report.run_status)


def _act_args(sub: Any) -> None:
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
    _config_args(p)
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


def _report_args(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="export verdicts: csv, jsonl or a json summary",
        description="Export the current state of every key of the target (its latest verdict or "
        "failure, deletions, skips of the latest scan). Streams: constant memory at any size.",
        conflict_handler="resolve",
    )
    _config_args(p)
    p.add_argument(
        "--store",
        action="append",
        default=argparse.SUPPRESS,
        help="SQLite store path (overrides [store] path); repeat to merge shard stores",
    )
    p.add_argument(
        "--urls", default=None, metavar="FILE", help="the URL list's rows (its own target)"
    )
    p.add_argument(
        "--target",
        default=None,
        metavar="ID",
        help="one of the store's targets (status lists them: cos://bucket.region/prefix, "
        "urls://...), for a copied store without a config",
    )
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
        "--by-user",
        action="store_true",
        help="uploaders ([scan] user_from_key) by flagged images and flagged share, "
        "instead of one row per key",
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


def _config_cmd_args(sub: Any) -> None:
    p = sub.add_parser(
        "config",
        help="show the effective configuration and where each value came from",
        description="Print every setting with its effective value and its source (flag, env, "
        "file or default); secrets are redacted.",
    )
    _config_args(p)
    p.add_argument("action", choices=("show",), help="show: print the configuration")
    p.add_argument("--json", action="store_true", help="as one JSON object")
    p.set_defaults(run=commands.run_config)


def _migrate_args(sub: Any) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply pending store migrations",
        description="Create the store if needed and bring its schema up to date "
        "(scan does this too).",
    )
    _config_args(p)
    p.set_defaults(run=commands.run_migrate)


def _demo_args(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="scan a synthetic album on an in-process emulator",
        description="Start the emulator in-process with a synthetic album and a little latency, "
        "run a full scan into a temporary store and print the summary.",
    )
    p.add_argument("--objects", type=int, default=3000, help="album size (default 3000)")
    p.add_argument("--seed", type=int, default=1, help="album seed")
    p.add_argument("--latency", type=float, default=0.02, help="emulator latency in seconds")
    p.add_argument(
        "--service",
        choices=("ci", "ims"),
        default="ci",
        help="audit through CI batch auditing (default) or IMS ImageModeration",
    )
    p.add_argument(
        "--review",
        action="store_true",
        help="then serve the review page on the demo's store (Ctrl-C ends the demo)",
    )
    _log_args(p, sub=True)
    metrics_args(p)
    p.set_defaults(run=scan.run_demo)


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in commands.EXIT_CODES)
    parser = _Parser(
        prog="cos-scanner",
        description="Bulk content moderation of a COS bucket "
        "with Tencent Cloud Infinite batch image auditing.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cos-scanner {__version__}")
    _global_args(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (
        _scan_args,
        _check_args,
        _review_args,
        _status_args,
        _report_args,
        _act_args,
        _config_cmd_args,
        _migrate_args,
        _demo_args,
        _emulator_args,
    ):
        add(sub)
    return parser
