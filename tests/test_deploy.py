"""The deployment files: the Kubernetes manifests meet the "restricted" Pod Security Standard,
and the systemd unit's exposure is at most 2.0 where `systemd-analyze` is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scanner.cli.parser import build_parser
from scanner.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from scanner.sources.shard import parse_shard

ROOT = Path(__file__).resolve().parent.parent


def manifests() -> list[dict[str, Any]]:
    return [
        d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/cronjob.yaml").read_text()) if d
    ]


def pod_spec() -> dict[str, Any]:
    (job,) = [d for d in manifests() if d["kind"] == "CronJob"]
    spec: dict[str, Any] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def shard_docs() -> list[dict[str, Any]]:
    text = (ROOT / "deploy/kubernetes/shards.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("spec", ["cronjob", "shards"])
def test_pod_meets_the_restricted_pod_security_standard(spec: str) -> None:
    if spec == "cronjob":
        check_restricted(pod_spec())
    else:
        (job,) = [d for d in shard_docs() if d["kind"] == "Job"]
        check_restricted(job["spec"]["template"]["spec"])


@pytest.mark.parametrize("name", ["cronjob.yaml", "shards.yaml"])
def test_manifests_validate_against_the_kubernetes_schemas(name: str) -> None:
    text = (ROOT / "deploy/kubernetes" / name).read_text()
    for doc in (d for d in yaml.safe_load_all(text) if d):
        kubernetes_validate.validate(doc, "1.30", strict=True)  # raises on any wrong field
    broken = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"completionMode": "Indexed",
              "completions": "four", "template": {"spec": {"containers": []}}}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


def test_the_indexed_job_gives_each_pod_its_shard_and_store() -> None:
    (job,) = [d for d in shard_docs() if d["kind"] == "Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert spec["parallelism"] == n
    (container,) = spec["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{n}"
    env = {e["name"]: e for e in container["env"]}
    field = env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    (store,) = [m for m in container["volumeMounts"] if m["name"] == "stores"]
    assert store["subPathExpr"] == "shard-$(JOB_COMPLETION_INDEX)"  # a store per shard
    parsed = build_parser().parse_args(["scan", "--shard", f"3/{n}"])  # the flag exists
    assert parse_shard(parsed.shard) == (3, n)


def check_restricted(spec: dict[str, Any]) -> None:
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


def _unit(path: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (ROOT / path).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_image_environment_does_not_shadow_a_mounted_config(tmp_path: Path) -> None:
    """No Docker engine here: run `config show` with exactly the ENV the Dockerfile sets and a
    config file where the image expects the mount; the file's values must win."""
    env_lines = re.findall(r"^ENV (.+)$", (ROOT / "Dockerfile").read_text(), re.M)
    image_env = dict(pair.split("=", 1) for line in env_lines for pair in line.split())
    mounted = tmp_path / "config.toml"  # stands for /etc/cos-scanner/config.toml
    mounted.write_text('[cos]\nbucket = "mine-1250000000"\n[store]\npath = "/data/mine.db"\n')
    env = {"PATH": "/usr/bin:/bin", **image_env, "COS_SCANNER_CONFIG": str(mounted)}
    assert image_env["COS_SCANNER_CONFIG"] == "/etc/cos-scanner/config.toml"
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "config", "show", "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    shown = json.loads(done.stdout)
    assert shown["store.path"] == {"value": "/data/mine.db", "source": "file"}
    assert shown["cos.bucket"]["source"] == "file"


def test_the_systemd_command_runs_a_scan_with_its_credentials(tmp_path: Path) -> None:
    """No systemd here: run the unit's ExecStart (its arguments) with the environment the unit
    gives (Environment=, and the LoadCredential= files under $CREDENTIALS_DIRECTORY) against
    the emulator: the demo album is scanned."""
    from tests.helpers import start_emulator

    unit = _unit("deploy/systemd/cos-scanner.service")
    creds = tmp_path / "credentials"
    creds.mkdir()
    for spec in unit["LoadCredential"]:
        name, _, _source = spec.partition(":")
        value = {"tencentcloud_secret_id": DEFAULT_SECRET_ID,
                 "tencentcloud_secret_key": DEFAULT_SECRET_KEY}[name]  # fmt: skip
        (creds / name).write_text(value + "\n")
    proc, url = start_emulator("--objects", "300", "--seed", "2")
    with proc:
        try:
            config = tmp_path / "config.toml"
            config.write_text(f'[cos]\nbucket = "album-1250000000"\nendpoint = "{url}"\n')
            env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(creds)}
            for pair in unit["Environment"]:
                name, _, value = pair.partition("=")
                env[name] = value
            env["COS_SCANNER_CONFIG"] = str(config)  # stands for /etc/cos-scanner/config.toml
            argv = unit["ExecStart"][0].split()[1:]  # after /usr/local/bin/cos-scanner
            done = subprocess.run([sys.executable, "-m", "scanner", *argv], env=env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=120,
                                  check=False)  # fmt: skip
        finally:
            proc.kill()
    assert done.returncode in (0, 3), done.stderr[-2000:]
    assert int(unit["UMask"][0], 8) == 0o077
    run = json.loads(done.stdout.splitlines()[-1])
    assert run["summary"]["state"] == "done"
    assert run["summary"]["listed"] == 300


def test_jobs_end_at_once_on_a_refused_key_and_push_their_metrics() -> None:
    """Issue 26, item 3: 2 and 77 fail the Job at once (a retry cannot mend them); the nightly
    maps 3 and 4 to success; both push their final metrics to a Pushgateway."""
    (cron,) = [d for d in manifests() if d["kind"] == "CronJob"]
    (shards,) = [d for d in shard_docs() if d["kind"] == "Job"]
    for spec in (cron["spec"]["jobTemplate"]["spec"], shards["spec"]):
        (rule,) = spec["podFailurePolicy"]["rules"]
        assert rule["action"] == "FailJob"
        assert rule["onExitCodes"]["values"] == [2, 77]
        assert spec["template"]["spec"]["restartPolicy"] == "Never"
        (container,) = spec["template"]["spec"]["containers"]
        assert "--metrics-push" in " ".join(container["args"])
    (script,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "case $code in 3|4) exit 0;; esac" in script
    assert "trap 'kill -TERM $pid' TERM INT" in script  # SIGTERM still reaches the scanner


@pytest.mark.parametrize(("scanner_exits", "pod_exits"), [(0, 0), (3, 0), (4, 0), (77, 77), (1, 1)])
def test_the_nightly_pod_script_maps_exit_codes(
    scanner_exits: int, pod_exits: int, tmp_path: Path
) -> None:
    """The CronJob's shell, run for real with a stand-in `cos-scanner` on PATH."""
    (cron,) = [d for d in manifests() if d["kind"] == "CronJob"]
    (script,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    fake = tmp_path / "cos-scanner"
    fake.write_text(f"#!/bin/sh\nexit {scanner_exits}\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    done = subprocess.run(["/bin/sh", "-c", script], env=env, check=False, timeout=30)
    assert done.returncode == pod_exits


def test_the_nightly_pod_script_lets_the_scanner_drain_on_sigterm(tmp_path: Path) -> None:
    """Kubernetes sends SIGTERM to the pod's first process, the shell: it must reach the
    scanner, and the pod ends with the scanner's own code (130: drained)."""
    import signal
    import time

    (cron,) = [d for d in manifests() if d["kind"] == "CronJob"]
    (script,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    marker = tmp_path / "drained"
    fake = tmp_path / "cos-scanner"
    fake.write_text(f"#!/bin/sh\ntrap 'touch {marker}; exit 130' TERM\nsleep 30 & wait\n")
    fake.chmod(0o755)
    with subprocess.Popen(
        ["/bin/sh", "-c", script], env={"PATH": f"{tmp_path}:/usr/bin:/bin"}
    ) as pod:
        time.sleep(0.5)
        pod.send_signal(signal.SIGTERM)
        assert pod.wait(timeout=20) == 130
    assert marker.exists()
