"""The command line: help for every subcommand, usage errors, the demo."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli import build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in action._choices_actions}
    assert set(helps) == set(_subcommands())
    assert all(helps.values())
    for sub in _subcommands().values():
        assert sub.description
        assert all(a.help for a in sub._actions)


def test_usage_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "invalid choice" in err


def test_bad_emulator_root(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert main(["emulator", "--root", "/nonexistent/dir"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "cos-scanner: config error: --root '/nonexistent/dir' is not a directory"
    )


@pytest.mark.parametrize("service", ["ci", "ims"])
def test_demo_scans_the_album_and_matches_the_rules(
    service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = "1500" if service == "ci" else "600"
    assert main(["demo", "--objects", objects, "--latency", "0.001", "--service", service]) == 0
    out = capsys.readouterr().out
    assert f"listed {int(objects):>13,}" in out
    assert "counts match the emulator's rules: yes" in out
    assert "(0 twice)" in out
    assert ("IMS requests" in out) == (service == "ims")


def test_shell_completion(tmp_path: Path) -> None:
    out = tmp_path / "completions"

    def complete(line: str) -> set[str]:
        env = dict(os.environ, _ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)),
                   _ARGCOMPLETE_STDOUT_FILENAME=str(out))  # fmt: skip
        subprocess.run([sys.executable, "-m", "scanner"], env=env, check=False, timeout=30)
        return set(out.read_text().replace("\x0b", " ").split())

    assert {"scan", "status"} <= complete("cos-scanner s")
    assert complete("cos-scanner act --res") == {"--result", "--resume"}
    assert {"private", "quarantine", "delete", "restore"} <= complete("cos-scanner act ")
