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
    assert "SuccessExitStatus=3 4 75 130" in service  # a few failed images, a pause: normal
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
    # every dependency comes pinned, with hashes, from the lock file
    assert "--require-hashes --wheel-dir /wheels -r requirements.lock" in text


def test_lock_files_pin_every_declared_dependency() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower().replace("_", "-")
                for spec in specs}  # fmt: skip

    def pinned(lock: str) -> set[str]:
        text = (ROOT / lock).read_text()
        return {
            m.lower().replace("_", "-") for m in re.findall(r"^([A-Za-z0-9_.-]+)==", text, re.M)
        }

    runtime = names(project["dependencies"])
    assert runtime <= pinned("requirements.lock")
    assert runtime | names(project["optional-dependencies"]["dev"]) <= pinned(
        "requirements-dev.lock"
    )
    for lock in ("requirements.lock", "requirements-dev.lock"):  # every pin has its hashes
        blocks = re.split(r"^(?=[A-Za-z0-9_.-]+==)", (ROOT / lock).read_text(), flags=re.M)
        pins = [b for b in blocks if "==" in b.split("\n", 1)[0]]
        assert pins
        assert all("--hash=sha256:" in b for b in pins), lock


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
