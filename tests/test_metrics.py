"""--metrics-file: Prometheus text, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scanner.cli import main
from tests.helpers import cli_config as cfg
from tests.helpers import emulator_process


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with emulator_process("--objects", "400", "--seed", "9") as url:
        yield url


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_file_matches_the_scan(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # one image the service cannot decode: a failure by reason in the metrics
    # and two objects of the same content: one audited, one sharing its verdict (unbilled)
    same = {"size": 7000, "etag": "9e107d9d372bb6826bd81d3542a419d6"}
    body = json.dumps(
        {"put": {"zz/corrupt-9.jpg": {"size": 5000}, "zz/a.jpg": same, "zz/b.jpg": same}}
    ).encode()
    req = urllib.request.Request(emulator + "/_emulator/objects", body, method="POST")
    urllib.request.urlopen(req, timeout=5).close()
    metrics = tmp_path / "scan.prom"
    config = str(cfg(tmp_path, emulator))
    assert main(["scan", "--config", config, "--metrics-file", str(metrics)]) == 3
    got = samples(metrics)
    target = (("target", "cos://album-1250000000.ap-guangzhou/"),)
    capsys.readouterr()
    assert main(["status", "--config", config, "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert got[("cos_scanner_objects_audited", target)] == status["audited"]
    assert got[("cos_scanner_objects_listed", target)] == status["listed"]
    assert status["shared"] == 1
    assert got[("cos_scanner_objects_shared", target)] == 1
    assert got[("cos_scanner_billed_units", target)] == 3 * (status["audited"] - 1)  # 3 scenes
    assert got[("cos_scanner_saved_units", target)] == 3
    assert got[("cos_scanner_objects_failed", (("reason", "-65007"), *target))] == 1
    assert got[("cos_scanner_maybe_billed_twice", target)] == 0
    assert (
        got[("cos_scanner_scan_end_timestamp_seconds", target)]
        >= got[("cos_scanner_scan_start_timestamp_seconds", target)]
    )
    assert ("cos_scanner_last_success_timestamp_seconds", target) in got
    assert not list(tmp_path.glob("scan.prom.*"))  # written atomically: no temporary left


def test_a_metrics_file_that_cannot_be_written_never_ends_the_scan(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk or a missing folder under --metrics-file is a warning, and the scan ends as
    it would without it (before: a 75-line traceback and no summary)."""
    config = str(cfg(tmp_path, emulator, store=str(tmp_path / "m.db")))
    missing = tmp_path / "no" / "such" / "folder" / "scan.prom"
    code = main(["scan", "--config", config, "--metrics-file", str(missing)])
    out, err = capsys.readouterr()
    assert code in (0, 3), err  # done (3: the corrupt image another test of the album put)
    assert "Traceback" not in out + err
    assert "could not write the metrics to" in err
    assert (tmp_path / "m.db.summary.json").exists()
