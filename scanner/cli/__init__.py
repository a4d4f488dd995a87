"""The command line: subcommands, exit codes, logging setup and signals live here only.

`parser` builds the arguments, `commands` runs each subcommand, `logs` sets up logging;
`main` maps every error to one line on stderr and an exit code.

Exit codes: `commands.EXIT_CODES` (also in the README and `--help`).
Errors are one line on stderr; `--verbose` adds the detail. Secrets never reach output.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence

import argcomplete

from scanner.cli.commands import (
    EXIT_AUTH,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    code_of,
    fail,
    log,
)
from scanner.cli.logs import setup_logging
from scanner.cli.parser import UsageError, build_parser
from scanner.errors import AuthError, ConfigError, ScanBusyError, ScannerError, leaf_error

__all__ = [
    "EXIT_AUTH",
    "EXIT_BUSY",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    argcomplete.autocomplete(parser)  # answers the shell's completion request, then exits
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        fail(str(exc))
        return EXIT_USAGE
    setup_logging(args.verbose, args.log_format)
    # Everything imported so far lives for the whole process: keep it out of the cyclic GC,
    # so a full collection walks only what the command allocates (on a scan, a few ms
    # instead of tens of ms of event-loop stall, which the audit budget's pacing feels).
    gc.freeze()
    # A scan allocates ~100 objects per image and frees nearly all of them by reference
    # counting (no cycles): a young collection every 700 allocations found almost nothing and
    # cost ~10 % of a scan's CPU (bench/client_cost.py, 100,000 objects: 1.38 -> 1.23 CPU-s /
    # 10k). Rarer collections; memory is unchanged (peak RSS the same).
    gc.set_threshold(20_000, 50, 100)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        try:
            return run(args)
        except BaseExceptionGroup as group:
            raise leaf_error(group) from group
    except BrokenPipeError:  # `cos-scanner ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (ScannerError, KeyboardInterrupt) as exc:
        return _exit_code(exc, args.verbose)


def _exit_code(exc: BaseException, verbose: bool) -> int:
    """One line on stderr for an error that ends a command; its exit code (`code_of`)."""
    if isinstance(exc, ConfigError):
        if len(exc.problems) > 1:  # one per line: nine of them made one 600-character line
            fail(f"cos-scanner: {exc.kind}: {len(exc.problems)} problems:")
            for problem in exc.problems:
                fail(f"  {problem}")
        else:
            fail(f"cos-scanner: {exc.kind}: {exc}")
    elif isinstance(exc, ScanBusyError):
        fail(f"cos-scanner: busy: {exc}")
    elif isinstance(exc, KeyboardInterrupt):
        fail("cos-scanner: interrupted")
    elif isinstance(exc, AuthError) and exc.service == "credentials":  # none to be had (77)
        fail(f"cos-scanner: credentials unavailable: {exc.message}: check [credentials]")
    elif isinstance(exc, AuthError):  # every command says it the same way (exit 77)
        fail(
            f"cos-scanner: credentials refused: {exc}: check TENCENTCLOUD_SECRET_ID/"
            "TENCENTCLOUD_SECRET_KEY (or [credentials]) and the key's permissions"
        )
    else:
        fail(f"cos-scanner: {exc}")
        if verbose:
            log.error("detail", exc_info=exc)
    return code_of(exc)
