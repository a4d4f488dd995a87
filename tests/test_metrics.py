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
    assert got[("cos_scanner_images_audited_total", target)] == status["audited"]
    assert got[("cos_scanner_objects_listed_total", target)] == status["listed"]
    assert status["shared"] == 1
    assert got[("cos_scanner_images_shared_total", target)] == 1
    assert got[("cos_scanner_images_billed_total", target)] == status["billed_images"]
    assert got[("cos_scanner_billed_units_total", target)] == 3 * (
        status["audited"] - 1
    )  # 3 scenes
    assert got[("cos_scanner_run_failed", (("reason", "-65007"), *target))] == 1
    assert got[("cos_scanner_maybe_billed_twice_total", target)] == 0
    assert got[("cos_scanner_last_run_exit_code", target)] == 3
    assert (
        got[("cos_scanner_last_run_end_timestamp_seconds", target)]
        >= got[("cos_scanner_run_start_timestamp_seconds", target)]
    )
    assert got[("cos_scanner_last_success_timestamp_seconds", target)] > 0
    assert got[("cos_scanner_review_queue", target)] == status["review_queue"]["to_review"]
    types = {f.name: f.type for f in text_string_to_metric_families(metrics.read_text())}
    assert types["cos_scanner_images_audited"] == "counter"  # typed counter, cumulative
    assert types["cos_scanner_last_run_exit_code"] == "gauge"
    assert not [n for n, t in types.items() if t == "gauge" and n.endswith("_total")]
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


def test_counters_survive_runs_and_a_failed_run_says_so(
    emulator: str, tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Issue 26, item 3: a failed nightly (a wrong key) rewrites the file with the last
    success still in it and its own exit code; the counters carry on from the store."""
    config = str(cfg(tmp_path, emulator, store=str(tmp_path / "c.db")))
    metrics = tmp_path / "c.prom"
    target = (("target", "cos://album-1250000000.ap-guangzhou/"),)
    assert main(["scan", "--config", config, "--metrics-file", str(metrics)]) in (0, 3)
    first = samples(metrics)
    success = first[("cos_scanner_last_success_timestamp_seconds", target)]
    assert success > 0
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "wrong")
    args = ["scan", "--config", config, "--incremental", "--metrics-file", str(metrics)]
    assert main(args) == 77
    failed = samples(metrics)
    assert failed[("cos_scanner_last_run_exit_code", target)] == 77
    assert failed[("cos_scanner_last_success_timestamp_seconds", target)] == success
    audited = ("cos_scanner_images_audited_total", target)
    assert failed[audited] == first[audited]  # cumulative: not reset by a run
    assert failed[("cos_scanner_last_run_end_timestamp_seconds", target)] > success
    capsys.readouterr()


def test_final_metrics_go_to_a_pushgateway_and_one_that_is_down_costs_nothing(
    emulator: str, tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 26, item 3: `--metrics-push URL` (a Kubernetes Job's way) PUTs the final metrics
    to the Pushgateway's job/target group; a gateway that is down is a warning, not a failure."""
    import http.server
    import threading

    got: list[tuple[str, bytes]] = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = str(cfg(tmp_path, emulator, store=str(tmp_path / "p.db")))
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert main(["scan", "--config", config, "--metrics-push", url]) in (0, 3)
    finally:
        server.shutdown()
        server.server_close()
    ((path, body),) = got  # one PUT: the group's metrics replaced
    assert path.startswith("/metrics/job/cos-scanner/target@base64/")
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"cos_scanner_last_run_exit_code", "cos_scanner_images_audited"} <= families
    capsys.readouterr()
    down = f"http://127.0.0.1:{server.server_address[1]}"  # closed now: nobody listens
    assert main(["scan", "--config", config, "--incremental", "--metrics-push", down]) in (0, 3)
    assert "could not push the metrics to" in capsys.readouterr().err
