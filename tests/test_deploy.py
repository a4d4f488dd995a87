"""The deployment files: the Kubernetes manifests meet the "restricted" Pod Security Standard,
and the systemd unit's exposure is at most 2.0 where `systemd-analyze` is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def manifests() -> list[dict[str, Any]]:
    return [
        d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/cronjob.yaml").read_text()) if d
    ]


def pod_spec() -> dict[str, Any]:
    (job,) = [d for d in manifests() if d["kind"] == "CronJob"]
    spec: dict[str, Any] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    spec = pod_spec()
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host), host
    for volume in spec["volumes"]:  # restricted allows only these volume types
        kinds = set(volume) - {"name"}
        assert kinds <= {"configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected",
                         "downwardAPI", "csi", "ephemeral"}, volume  # fmt: skip
    for container in spec["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert not ctx["capabilities"].get("add")
        assert ctx.get("privileged", False) is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert not container.get("ports") or all("hostPort" not in p for p in container["ports"])


def test_store_volume_is_sized_from_the_documented_formula() -> None:
    (pvc,) = [d for d in manifests() if d["kind"] == "PersistentVolumeClaim"]
    text = (ROOT / "deploy/kubernetes/cronjob.yaml").read_text()
    assert "0.84 KB" in text  # bytes per object, measured
    size = pvc["spec"]["resources"]["requests"]["storage"]
    gib = int(re.fullmatch(r"(\d+)Gi", size)[1])  # type: ignore[index]
    assert gib * 2**30 >= 10**8 * 0.84e3 * 1.5 * 0.95  # 10^8 objects fit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_unit_exposure_is_at_most_2() -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes",
         str(ROOT / "deploy/systemd/cos-scanner.service")],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match is not None, out[-500:]
    assert float(match[1]) <= 2.0, out[-2000:]
