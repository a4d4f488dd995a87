"""Configuration: the example file, precedence, and one error naming every problem."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.config import FIELDS, SECTIONS, load_config
from scanner.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENV = {"TENCENTCLOUD_SECRET_ID": "AKIDx", "TENCENTCLOUD_SECRET_KEY": "sekrit"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_example_loads_and_mentions_every_field() -> None:
    example = ROOT / "config.example.toml"
    config = load_config(example, ENV)
    assert config.cos.bucket == "examplebucket-1250000000"
    text = example.read_text()
    for name, cls in SECTIONS.items():
        assert f"[{name}]" in text
        defaults = getattr(config, FIELDS[name])
        for f in dataclasses.fields(cls):
            assert f"\n{f.name} = " in text, f"{name}.{f.name} missing from the example"
            if (name, f.name) != ("cos", "bucket"):  # required: the example names one
                assert getattr(defaults, f.name) == getattr(cls(), f.name), f"{name}.{f.name}"


def test_precedence_flag_env_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[cos]\nbucket = "file-1250000000"\nprefix = "f/"\n[audit]\nqps = 5\n')
    env = {**ENV, "COS_SCANNER_COS_PREFIX": "env/", "COS_SCANNER_AUDIT_QPS": "7.5"}
    config = load_config(path, env, {"cos.prefix": "flag/"})
    assert config.cos.bucket == "file-1250000000"
    assert config.cos.prefix == "flag/"
    assert config.audit.qps == 7.5


def test_secrets_only_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[cos]\nbucket = "b-1250000000"\nsecret_key = "x"\n')
    with pytest.raises(ConfigError, match=r"cos.secret_key: unknown key"):
        load_config(path, ENV)
    config = load_config(
        write(tmp_path, '[cos]\nbucket = "b-1250000000"\n'),
        {**ENV, "TENCENTCLOUD_SESSION_TOKEN": "tok"},
    )
    assert config.keys is not None
    assert config.keys.token == "tok"
    assert "sekrit" not in repr(config)
    assert "tok" not in repr(config.keys)


def test_every_problem_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[cos]
bucket = "nobucketid"
region = "Guangzhou"
typo = 1
[audit]
batch_size = 101
concurrency = "many"
qps = -1
detect_type = "Porn,Nudity"
[credentials]
provider = "env"
[bogus]
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    problems = info.value.problems
    assert any(
        p.startswith("cos.bucket: must be BucketName-APPID") and "'nobucketid'" in p
        for p in problems
    )
    assert any(p.startswith("cos.region:") for p in problems)
    assert "cos.typo: unknown key" in problems  # the value is never echoed
    assert "audit.batch_size: must be between 1 and 100 (got 101)" in problems
    assert "audit.concurrency: must be an integer (got 'many')" in problems
    assert "audit.qps: must be between 0.01 and 100000 (got -1.0)" in problems
    assert any(p.startswith("audit.detect_type: unknown type(s) ['Nudity']") for p in problems)
    assert any(p.startswith("bogus: unknown section") for p in problems)
    assert any(p.startswith("credentials:") for p in problems)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[cos\n", "not valid TOML"),
        ('[cos]\nbucket = ""\n', "cos.bucket: is required"),
        ('[cos]\nbucket = "b-1250000000"\nendpoint = "ftp://x"\n', "cos.endpoint: must be an http"),
        ('[cos]\nbucket = "b-1250000000"\nendpoint = "http://h:9/x"\n', "must have no path"),
        ('[cos]\nbucket = "b-1250000000"\n[audit]\nbatch_size = 0\n', "audit.batch_size"),
        ('[cos]\nbucket = "b-1250000000"\n[audit]\nlarge_image_detect = "yes"\n', "true or false"),
        ('[cos]\nbucket = "b-1250000000"\n[store]\npath = ""\n', "store.path"),
        ("cos = 3\n", r"cos: must be a \[cos\] table"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text), ENV)


def test_missing_file_and_partial_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", ENV)
    path = write(tmp_path, '[cos]\nbucket = "b-1250000000"\n')
    with pytest.raises(ConfigError, match="TENCENTCLOUD_SECRET_KEY is not set"):
        load_config(path, {"TENCENTCLOUD_SECRET_ID": "x"})
    assert load_config(path, {}, require_credentials=False).keys is None


def test_env_values_are_coerced(tmp_path: Path) -> None:
    path = write(tmp_path, '[cos]\nbucket = "b-1250000000"\n')
    env = {
        **ENV,
        "COS_SCANNER_AUDIT_LARGE_IMAGE_DETECT": "true",
        "COS_SCANNER_AUDIT_BATCH_SIZE": "50",
        "COS_SCANNER_AUDIT_CONCURRENCY": "x",
    }
    with pytest.raises(ConfigError, match=r"audit.concurrency: must be an integer \(got 'x'\)"):
        load_config(path, env)
    del env["COS_SCANNER_AUDIT_CONCURRENCY"]
    config = load_config(path, env)
    assert config.audit.large_image_detect is True
    assert config.audit.batch_size == 50


def test_freeze_and_act_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[cos]\nbucket = "b-1250000000"\n[audit.freeze]\nporn_score = 90\n'
        '[act]\non_flagged = "quarantine"\nquarantine_to = "cos://q-1250000000/album/"\n',
    )
    env = {**ENV, "COS_SCANNER_AUDIT_FREEZE_ADS_SCORE": "80"}
    config = load_config(path, env)
    assert config.freeze.thresholds() == {"Porn": 90, "Ads": 80}
    assert config.act.on_flagged == "quarantine"
    bad = write(tmp_path, '[cos]\nbucket = "b-1250000000"\n[audit.freeze]\nporn_score = 101\n'
                '[act]\non_flagged = "delete"\nquarantine_to = "s3://x/"\n')  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(bad, ENV)
    problems = info.value.problems
    assert any(p.startswith("audit.freeze.porn_score: must be between 0 and 100") for p in problems)
    assert any(
        p.startswith("act.on_flagged: must be private, quarantine or empty") for p in problems
    )
    assert any(p.startswith("act.quarantine_to: must be cos://") for p in problems)


def test_config_show_sources_and_redaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    path = write(tmp_path, '[cos]\nbucket = "file-1250000000"\n[audit]\nqps = 5\n')
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDsecretid123")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "the-secret-key")
    monkeypatch.setenv("COS_SCANNER_AUDIT_CONCURRENCY", "9")
    argv = ["config", "show", "--config", str(path), "--store", "flag.db", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["cos.bucket"] == {"value": "file-1250000000", "source": "file"}
    assert shown["audit.qps"] == {"value": 5.0, "source": "file"}
    assert shown["audit.concurrency"] == {
        "value": 9,
        "source": "env COS_SCANNER_AUDIT_CONCURRENCY",
    }
    assert shown["store.path"] == {"value": "flag.db", "source": "flag"}
    assert shown["cos.region"]["source"] == "default"
    assert shown["credentials.keys"] == {
        "value": "**** (set)",
        "source": "env TENCENTCLOUD_SECRET_ID",
    }
    assert shown["credentials.provider"] == {"value": "auto", "source": "default"}
    assert shown["credentials.source"]["value"] == "env TENCENTCLOUD_SECRET_ID"
    assert shown["credentials.expires"]["value"] == "never (long-term keys)"
    assert "the-secret-key" not in out
    assert "secretid123" not in out


def test_credentials_from_systemd_load_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "tencentcloud_secret_id").write_text("AKIDfromfile\n")
    (creds / "tencentcloud_secret_key").write_text("key-from-file\n")
    path = write(tmp_path, '[cos]\nbucket = "b-1250000000"\n')
    config = load_config(path, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.keys is not None
    assert (config.keys.secret_id, config.keys.secret_key) == (
        "AKIDfromfile",
        "key-from-file",
    )
    # the environment, when set, wins
    env = {"CREDENTIALS_DIRECTORY": str(creds), **ENV}
    assert load_config(path, env).keys == load_config(path, ENV).keys


@pytest.mark.parametrize(("region", "warned"), [("ap-guangzou", True), ("ap-beijing", False)])
def test_a_region_without_moderation_is_a_warning_naming_the_known_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, region: str, warned: bool
) -> None:
    """Issue "Every path", item 5: a region typo was not noticed (COS then answers
    NoSuchBucket, read as a missing bucket)."""
    path = write(tmp_path, f'[cos]\nbucket = "b-1250000000"\nregion = "{region}"\n')
    with caplog.at_level(logging.WARNING, logger="scanner.config"):
        config = load_config(path, ENV)
    assert config.cos.region == region  # a warning, not an error: new regions open
    lines = [r.getMessage() for r in caplog.records if r.name == "scanner.config"]
    if warned:
        assert len(lines) == 1
        assert "'ap-guangzou' is not one of the regions where CI moderates" in lines[0]
        assert "ap-guangzhou" in lines[0]
    else:
        assert lines == []


def test_config_problems_come_one_per_line_and_values_cut_to_80(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue "Every path", items 5 and 7: nine problems were one 600-character line, and a
    value was echoed whole, however long."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDx")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "sekrit")
    long = "x" * 500
    path = write(
        tmp_path,
        f'[cos]\nbucket = "{long}"\n[audit]\nbatch_size = 0\nconcurrency = "many"\n',
    )
    assert main(["scan", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "cos-scanner: config error: 3 problems:"
    assert len(lines) == 4
    assert all(line.startswith("  ") for line in lines[1:])
    assert any("audit.batch_size: must be between 1 and 100 (got 0)" in line for line in lines)
    bucket = next(line for line in lines if "cos.bucket" in line)
    assert f"(got '{'x' * 76}...)" in bucket  # the repr cut to 80 characters
    assert len(bucket) < 250
