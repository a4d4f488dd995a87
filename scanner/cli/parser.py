"""The command line's arguments: one parser, a subparser per command, one-line usage errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.cli import check, commands, emulator, scan
from scanner.cli.argtypes import config_args, global_args, log_args, metrics_args
from scanner.cli.parser_results import act_args, report_args, review_args, status_args


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
    log_args(p, sub=True)
    p.set_defaults(run=emulator.run_emulator)


def _scan_args(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="scan the configured target, or resume its unfinished scan",
        description="List the bucket, audit every image in batches under the configured limits "
        "and checkpoint every object in SQLite. Resumes an unfinished scan of the same target.",
    )
    config_args(p)
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
    config_args(p)
    p.add_argument(
        "image", metavar="KEY|URL", help="an object key of the bucket, or an http(s) URL"
    )
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    p.set_defaults(run=check.run_check)


def _config_cmd_args(sub: Any) -> None:
    p = sub.add_parser(
        "config",
        help="show the effective configuration and where each value came from",
        description="Print every setting with its effective value and its source (flag, env, "
        "file or default); secrets are redacted.",
    )
    config_args(p)
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
    config_args(p)
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
    log_args(p, sub=True)
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
    global_args(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (
        _scan_args,
        _check_args,
        review_args,
        status_args,
        report_args,
        act_args,
        _config_cmd_args,
        _migrate_args,
        _demo_args,
        _emulator_args,
    ):
        add(sub)
    return parser
