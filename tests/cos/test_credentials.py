"""Credential providers against the emulator's metadata service and STS (reference 13): keys
renewed ahead of expiry, a refusal for a lapsed token renewed once and sent once more, a
renewal failure logged and retried, 77 only once the keys expired with none to be had; and
the common SDK's own providers (the referees) read the same endpoints."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from scanner.config import (
    CosSettings,
    Credentials,
    CredentialSettings,
    Identity,
    TkeIdentity,
    load_config,
)
from scanner.cos.client import HttpClient, cos_service
from scanner.cos.credentials import CredentialsUnavailable, Provider, describe, provider_for
from scanner.emulator import (
    DEFAULT_BUCKET,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorState,
    running,
    synthetic,
)
from scanner.emulator import Identity as Issuing
from scanner.errors import AuthError, ConfigError
from tests.helpers import sdk_client

ROLE_ARN = "qcs::cam::uin/100000000001:roleName/cos-scanner"


def cvm(url: str, **kw: Any) -> CredentialSettings:
    return CredentialSettings(
        provider="cvm-role", metadata_endpoint=url + "/latest/meta-data/", **kw
    )


def tke(tmp_path: Path, token: str = "emulator-oidc-token") -> TkeIdentity:
    path = tmp_path / "token"
    path.write_text(token)
    return TkeIdentity("ap-guangzhou", "tke-cluster-1", str(path), ROLE_ARN)


async def list_one(http: HttpClient, url: str) -> int:
    cos = CosSettings(bucket=DEFAULT_BUCKET, endpoint=url)
    reply = await http.send(cos_service(cos), "GET", "/", params={"max-keys": "1"})
    return reply.status


def state(lifetime: float = 1800.0) -> EmulatorState:
    return EmulatorState(bucket=synthetic(20, 1), identity=Issuing(lifetime=lifetime))


async def test_cvm_role_keys_are_renewed_before_they_expire() -> None:
    emulator = state(lifetime=4)
    async with running(emulator) as url:
        provider = provider_for(cvm(url), Identity())
        async with HttpClient(provider) as http:
            first = http.keys()
            assert first.token
            assert first.secret_id.startswith("AKIDtmp")
            assert provider.expires is not None
            assert 2 < provider.expires - time.time() <= 4
            seen = set()
            for _ in range(14):  # 7 s: three lifetimes of 4 s
                assert await list_one(http, url) == 200
                seen.add(http.keys().secret_id)
                await anyio.sleep(0.5)
    assert len(seen) >= 3
    assert emulator.stats.expired_tokens == 0  # every request went with a live token
    assert emulator.stats.credentials_issued["metadata"] == len(seen)


async def test_a_lapsed_token_is_renewed_once_and_the_request_sent_once_more() -> None:
    emulator = state()
    async with running(emulator) as url:
        provider = provider_for(cvm(url), Identity())
        async with HttpClient(provider) as http:
            used = http.keys()
            emulator.keys[used.secret_id].token_expires = time.time() - 1  # revoked early
            assert await list_one(http, url) == 200
            assert http.keys() != used
    assert emulator.stats.expired_tokens == 1
    assert emulator.stats.credentials_issued["metadata"] == 2
    assert provider.renewals == 1


async def test_a_refusal_with_the_newest_keys_still_valid_is_not_retried() -> None:
    """A policy that grants nothing is not a lapsed token: one look at the source gives the
    same keys, and the refusal stands (exit 77 in a command); nothing is sent twice."""
    emulator = state()
    async with running(emulator) as url:
        provider = provider_for(cvm(url), Identity())
        async with HttpClient(provider) as http:
            emulator.faults.deny_buckets = [DEFAULT_BUCKET]
            with pytest.raises(AuthError, match="Access Denied"):
                await list_one(http, url)
    assert emulator.stats.requests["list"] == 1
    assert emulator.stats.requests["metadata"] == 3  # the role once, its keys twice
    assert emulator.stats.credentials_issued["metadata"] == 1


async def test_a_failed_renewal_is_retried_and_only_expired_keys_end_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = state(lifetime=3)
    async with running(emulator) as url:
        provider = provider_for(cvm(url), Identity())
        async with HttpClient(provider) as http:
            emulator.identity.role = "gone"  # the metadata service no longer names our role
            with caplog.at_level(logging.WARNING, logger="scanner"):
                assert await list_one(http, url) == 200  # still valid: sent as they are
                await anyio.sleep(max(0.0, (provider.expires or 0) - time.time()) + 0.2)
                with pytest.raises(CredentialsUnavailable, match=r"expired at .* no others"):
                    await list_one(http, url)
    assert "renewal from cvm-role" in caplog.text
    assert "trying again" in caplog.text
    assert provider.keys().secret_key not in caplog.text
    assert str(provider.keys().token) not in caplog.text


async def test_tke_oidc_trades_the_token_file_for_keys_and_rereads_it(tmp_path: Path) -> None:
    emulator = state(lifetime=3)
    async with running(emulator) as url:
        settings = CredentialSettings(provider="tke-oidc", sts_endpoint=url + "/")
        ident = tke(tmp_path)
        provider = provider_for(settings, Identity(tke=ident))
        async with HttpClient(provider) as http:
            for _ in range(8):
                assert await list_one(http, url) == 200
                await anyio.sleep(0.5)
            await anyio.Path(ident.token_file).write_text("rotated-and-wrong")
            await anyio.sleep(2.5)  # the next renewal reads the file again: refused
    assert emulator.stats.credentials_issued["AssumeRoleWithWebIdentity"] >= 2
    assert emulator.stats.expired_tokens == 0
    assert (
        emulator.stats.requests["sts AssumeRoleWithWebIdentity"]
        > (emulator.stats.credentials_issued["AssumeRoleWithWebIdentity"])
    )


async def test_auto_takes_the_profile_file_then_the_cvm_role(tmp_path: Path) -> None:
    emulator = state()
    async with running(emulator) as url:
        meta = f'[credentials]\nmetadata_endpoint = "{url}/latest/meta-data/"\n'
        path = tmp_path / "c.toml"
        path.write_text(f'[cos]\nbucket = "{DEFAULT_BUCKET}"\nendpoint = "{url}"\n' + meta)
        home = tmp_path / "home"
        (home / ".tencentcloud").mkdir(parents=True)
        profile = home / ".tencentcloud" / "credentials"
        profile.write_text(
            f"[default]\nsecret_id = {DEFAULT_SECRET_ID}\nsecret_key = {DEFAULT_SECRET_KEY}\n"
        )
        config = load_config(path, {"HOME": str(home)})
        assert config.identity.keys_from == f"profile {profile}"
        async with HttpClient(provider_for(config.credentials, config.identity)) as http:
            assert await list_one(http, url) == 200
        profile.unlink()
        config = load_config(path, {"HOME": str(home)})
        source, expires = await describe(config.credentials, config.identity)
        assert source == f"cvm-role via {url}/latest/meta-data/"
        assert "renewed before then" in expires
    assert emulator.stats.credentials_issued["metadata"] == 1


async def test_auto_with_nothing_anywhere_names_what_it_tried(tmp_path: Path) -> None:
    settings = CredentialSettings(metadata_endpoint="http://127.0.0.1:9/latest/meta-data/")
    provider = provider_for(settings, Identity())
    with pytest.raises(ConfigError) as caught:
        async with HttpClient(provider):
            pass
    text = "\n".join(caught.value.problems)
    for tried in ("TENCENTCLOUD_SECRET_ID", "no profile file", "no CVM role", "TKE_REGION"):
        assert tried in text


def test_a_provider_that_needs_what_is_not_there_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    cases = (("env", "TENCENTCLOUD_SECRET_ID"), ("tke-oidc", "TKE_REGION"),
             ("profile", "no profile file"), ("cvm", "must be one of"))  # fmt: skip
    for provider, needed in cases:
        path.write_text(f'[cos]\nbucket = "b-1250000000"\n[credentials]\nprovider = "{provider}"\n')
        with pytest.raises(ConfigError, match=needed):
            load_config(path, {"HOME": str(tmp_path)})


def test_fixed_keys_are_not_renewed() -> None:
    provider = Provider.fixed(Credentials("AKIDx", "k"), "env TENCENTCLOUD_SECRET_ID")
    assert not provider.renewable
    assert provider.expires is None


# -- the referees: the common SDK's providers, pointed at the emulator ------------------------


@pytest.fixture
def sdk_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's STS calls build an HttpProfile (https) inside the provider: plain HTTP to
    reach the emulator on loopback."""
    from tencentcloud.common import credential
    from tencentcloud.common.profile.http_profile import HttpProfile

    class Plain(HttpProfile):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, protocol="http", **kwargs)

    monkeypatch.setattr(credential, "HttpProfile", Plain)


def sdk_lists(url: str, secret_id: str, secret_key: str, token: str) -> int:
    """The COS SDK lists the bucket with these keys (its token in x-cos-security-token)."""
    client = sdk_client(url, secret_key, token, secret_id)
    answer = client.list_objects(Bucket=DEFAULT_BUCKET, MaxKeys=2)
    return len(answer.get("Contents", []))


async def test_the_sdks_providers_read_the_emulators_endpoints(
    sdk_over_http: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tencentcloud.common.credential import (
        CVMRoleCredential,
        DefaultTkeOIDCRoleArnProvider,
        STSAssumeRoleCredential,
    )

    emulator = state()
    async with running(emulator) as url:
        host = urlsplit(url).netloc

        def calls() -> list[tuple[str, str, str]]:
            role = CVMRoleCredential()
            role._role_endpoint = url + "/latest/meta-data/cam/security-credentials/"
            ident = tke(tmp_path)
            for var, value in zip(
                ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN"),
                (ident.region, ident.provider_id, ident.token_file, ident.role_arn),
                strict=True,
            ):
                monkeypatch.setenv(var, value)
            oidc = DefaultTkeOIDCRoleArnProvider().get_credentials()
            oidc.endpoint = host
            sts = STSAssumeRoleCredential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, ROLE_ARN,
                                          "cos-scanner-test", 3600, endpoint=host)  # fmt: skip
            return [c.get_credential_info() for c in (role, oidc, sts)]

        triples = await anyio.to_thread.run_sync(calls)
        for sid, key, token in triples:
            assert sid.startswith("AKIDtmp")
            assert key
            assert token
            assert await anyio.to_thread.run_sync(sdk_lists, url, sid, key, token) == 2
    assert emulator.stats.credentials_issued == {
        "metadata": 1, "AssumeRoleWithWebIdentity": 1, "AssumeRole": 1,
    }  # fmt: skip


def test_config_show_names_the_source_and_expiry_never_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scanner.cli import main
    from tests.helpers import emulator_process

    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY", raising=False)
    with emulator_process("--objects", "5", "--token-lifetime", "600") as url:
        path = tmp_path / "c.toml"
        path.write_text(
            f'[cos]\nbucket = "{DEFAULT_BUCKET}"\nendpoint = "{url}"\n'
            f'[store]\npath = "{tmp_path / "s.db"}"\n[credentials]\nprovider = "cvm-role"\n'
            f'metadata_endpoint = "{url}/latest/meta-data/"\n'
        )
        assert main(["config", "show", "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert f'credentials.source = "cvm-role via {url}/latest/meta-data/"' in out
        assert "credentials.expires" in out
        assert "(in 59" in out or "(in 60" in out  # 600 s keys: renewed 300 s before
        assert "AKIDtmp" not in out
        assert "Token" not in out
        # the same provider signs a real command: `check` of one object
        key = next(k for k in synthetic(5, 1).objects if k.endswith(".jpg"))
        main(["check", "--config", str(path), "--json", key])
        assert '"result": ' in capsys.readouterr().out
        # links signed with 600 s keys cannot live the 2 hours asked: said, not hidden
        assert main(["scan", "--config", str(path)]) == 0
        capsys.readouterr()
        assert main(["report", "--config", str(path), "--presign", "7200"]) == 0
        captured = capsys.readouterr()
        assert "x-cos-security-token=" in captured.out
        assert "stop working when they expire" in captured.err


def test_keys_that_cannot_be_had_end_a_command_with_77(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scanner.cli import main

    path = tmp_path / "c.toml"
    path.write_text(
        '[cos]\nbucket = "b-1250000000"\nendpoint = "http://127.0.0.1:9"\n[credentials]\n'
        'provider = "cvm-role"\nmetadata_endpoint = "http://127.0.0.1:9/latest/meta-data/"\n'
    )
    assert main(["scan", "--config", str(path), "--store", str(tmp_path / "s.db")]) == 77
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "cannot reach http://127.0.0.1:9/latest/meta-data/cam/security-credentials/" in err[0]
