"""The shipped docs and deploy files say what the product does."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_schedule_runs_the_incremental_scan() -> None:
    files = [
        ROOT / "deploy/cron/cos-scanner",
        ROOT / "deploy/systemd/cos-scanner.service",
        ROOT / "deploy/kubernetes/cronjob.yaml",
    ]
    for path in files:
        text = path.read_text()
        assert re.search(r"scan\"?,? \"?--incremental", text), path
    k8s = (ROOT / "deploy/kubernetes/cronjob.yaml").read_text()
    assert "concurrencyPolicy: Forbid" in k8s
    assert "mountPath: /var/lib/cos-scanner" in k8s
    assert "persistentVolumeClaim" in k8s
    service = (ROOT / "deploy/systemd/cos-scanner.service").read_text()
    assert "SuccessExitStatus=75 130" in service
    assert "OnCalendar=" in (ROOT / "deploy/systemd/cos-scanner.timer").read_text()


def test_dockerfile_is_multistage_non_root_with_volume_and_entrypoint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert re.search(r"^USER scanner$", text, re.M)
    assert "VOLUME /var/lib/cos-scanner" in text
    assert "COS_SCANNER_CONFIG=/etc/cos-scanner/config.toml" in text
    assert 'ENTRYPOINT ["cos-scanner"]' in text
    assert "COPY migrations ./migrations" in text
    # no setting set as ENV: it would shadow a mounted config file (flag > env > file)
    settings = re.findall(r"COS_SCANNER_(?!CONFIG)[A-Z_]+=", text)
    assert settings == [], settings
    # every declared dependency reaches the image: the wheels come from pyproject, not a list
    assert re.search(r"pip wheel [^\n]*--wheel-dir /wheels \.", text)
    assert "--no-deps" not in text


def test_readme_documents_commands_and_exit_codes() -> None:
    text = (ROOT / "README.md").read_text()
    needles = (
        "make demo",
        "make test",
        "scan --incremental",
        "--retry-failed",
        "report",
        "--presign",
        "| 75 |",
        "| 130 |",
        "docker run",
        "--log-format json",
    )
    for needle in needles:
        assert needle in text, needle
