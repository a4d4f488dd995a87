"""Modes never hijack each other (issue "Every path", item 1): a nightly `--incremental`
goes on only with an unfinished scan of its own kind and input, and otherwise starts its own,
leaving a paused `--force` or backlog, or a failed Inventory scan, to a plain `scan` or to
`scan --abandon`. Before: the nightly resumed whatever was unfinished (a paused `--force`
made it a full re-audit; a failed Inventory scan blocked a listing nightly)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.errors import ConfigError
from scanner.models import ScanStatus, Target
from scanner.scan.plan import Mode
from scanner.scan.runner import opening
from scanner.sources.inputs import INVENTORY
from tests.helpers import cli_config, emulator_process, stats

PAUSED, DONE_OK = 4, (0, 3)  # exit codes: paused by --max-images; done (3: some images failed)
TARGET = Target("album-1250000000", "ap-guangzhou")


def status(capsys: pytest.CaptureFixture[str], config: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["status", "--config", config, "--json"]) == 0
    scans: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return scans


def test_a_paused_force_does_not_take_over_the_nightly(
    tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with emulator_process("--objects", "400", "--seed", "5") as url:
        config = str(cli_config(tmp_path, url))
        assert main(["scan", "--config", config]) in DONE_OK  # the backlog
        assert main(["scan", "--config", config, "--force", "--max-images", "100"]) == PAUSED
        billed = stats(url)["audited_images"]
        # the nightly: every object still has a valid verdict, so it bills nothing
        capsys.readouterr()
        assert main(["scan", "--config", config, "--incremental", "--dry-run", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == 0
        assert main(["scan", "--config", config, "--incremental"]) in DONE_OK
        assert stats(url)["audited_images"] == billed
        nightly, forced, backlog = status(capsys, config)[:3]
        assert (nightly["mode"], nightly["state"]) == ("incremental", "done")
        assert forced["state"] == "paused"  # left as it was, resumable
        # a plain scan goes on with the paused re-audit, from where it stopped
        assert main(["scan", "--config", config]) in DONE_OK
        after = status(capsys, config)
        assert len(after) == 3  # no new scan: the paused one went on
        assert (after[1]["scan_id"], after[1]["state"]) == (forced["scan_id"], "done")
        assert stats(url)["audited_images"] > billed
        assert backlog["state"] == "done"


def test_abandon_drops_the_unfinished_scan_saying_what_it_leaves(
    tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with emulator_process("--objects", "400", "--seed", "6") as url:
        config = str(cli_config(tmp_path, url))
        assert main(["scan", "--config", config, "--max-images", "50"]) == PAUSED
        billed = stats(url)["audited_images"]
        capsys.readouterr()
        assert main(["scan", "--config", config, "--abandon"]) == 0
        out = capsys.readouterr().out
        assert re.fullmatch(
            r"scan 1 \(full, paused\) abandoned: [\d,]+ of its [\d,]+ listed objects were not "
            r"audited(, and its listing was not finished)?; its verdicts stay\n",
            out,
        ), out
        assert status(capsys, config)[0]["state"] == "abandoned"
        assert main(["scan", "--config", config, "--abandon"]) == 0
        assert "has no unfinished scan: nothing to abandon" in capsys.readouterr().out
        # a new scan takes the verdicts the abandoned one made: those 50 are not billed again
        assert main(["scan", "--config", config]) in DONE_OK
        assert stats(url)["double_audited"] == 0
        assert stats(url)["audited_images"] > billed


@pytest.mark.parametrize(
    "extra",
    [["--dry-run"], ["--max-images", "5"], ["--force"], ["--incremental"], ["--retry-failed"]],
)
def test_abandon_goes_with_no_other_action(
    tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    config = str(cli_config(tmp_path, "http://127.0.0.1:9"))
    assert main(["scan", "--config", config, "--abandon", *extra]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line


def _scan(mode: str, state: str, digest: str = "", force: bool = False) -> ScanStatus:
    return ScanStatus(
        id=1, target=TARGET.id, mode=mode, policy="p", state=state, marker="",
        listing_done=False, listed=10, audited=5, flagged=0, review=0, failed=0, skipped=0,
        requests=1, error=None, started_at=1.0, updated_at=2.0, finished_at=None,
        run_started_at=1.0, run_audited=5, reuse_since=1.0 if force else 0.0,
        source_digest=digest,
    )  # fmt: skip


DONE = _scan("full", "done")
INV_A, INV_B = INVENTORY + "a", INVENTORY + "b"


@pytest.mark.parametrize(
    ("unfinished", "mode", "digest", "action"),
    [
        (_scan("full", "paused", force=True), Mode.INCREMENTAL, "", "new"),
        (_scan("full", "paused", force=True), Mode.FULL, "", "resume"),
        (_scan("full", "paused", force=True), Mode.RETRY_FAILED, "", "new"),
        (_scan("full", "paused"), Mode.INCREMENTAL, "", "new"),  # a paused backlog stays
        (_scan("incremental", "interrupted"), Mode.INCREMENTAL, "", "resume"),
        (_scan("retry-failed", "paused"), Mode.RETRY_FAILED, "", "resume"),
        (_scan("full", "failed", INV_A), Mode.INCREMENTAL, "", "new"),  # failed Inventory scan
        (_scan("incremental", "failed", INV_A), Mode.INCREMENTAL, "", "new"),
        (_scan("incremental", "failed", INV_A), Mode.INCREMENTAL, INV_B, "abandon"),  # newer
        (_scan("incremental", "failed", INV_A), Mode.INCREMENTAL, INV_A, "resume"),
        (_scan("full", "paused"), Mode.FORCE, "", "abandon"),
        (None, Mode.FULL, "", "nothing"),
        (None, Mode.INCREMENTAL, "", "new"),
    ],
)
def test_which_scan_a_mode_goes_on_with(
    unfinished: ScanStatus | None, mode: Mode, digest: str, action: str
) -> None:
    assert opening(TARGET, unfinished or DONE, unfinished, mode, digest) == action


def test_a_plain_scan_from_another_input_than_its_unfinished_scan_is_told_how_to_finish() -> None:
    inventory = _scan("full", "failed", INV_A)
    with pytest.raises(ConfigError, match="--inventory"):
        opening(TARGET, inventory, inventory, Mode.FULL, "")
    same = dataclasses.replace(inventory, source_digest="")
    assert opening(TARGET, same, same, Mode.FULL, "") == "resume"


def test_skipped_rows_survive_a_failed_scan_and_a_retry_pass(
    tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 2: reports belong to objects, not to the last scan's fate (before: a scan that
    failed on a wrong key, or a retry pass, emptied the skipped rows of every report)."""

    def skipped() -> int:
        capsys.readouterr()
        assert main(["report", "--config", config, "--format", "jsonl"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return sum(1 for r in rows if r["state"] == "skipped")

    with emulator_process("--objects", "300", "--seed", "7") as url:
        config = str(cli_config(tmp_path, url))
        assert main(["scan", "--config", config]) in DONE_OK
        before = skipped()
        assert before > 0
        with monkeypatch.context() as m:
            m.setenv("TENCENTCLOUD_SECRET_KEY", "wrong")
            assert main(["scan", "--config", config, "--incremental"]) == 77
        assert skipped() == before
        assert main(["scan", "--config", config, "--retry-failed"]) in DONE_OK
        assert skipped() == before
