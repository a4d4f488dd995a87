"""Per-user attribution: `[scan] user_from_key`, UserInfo.TokenId sent, `report --by-user`."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import anyio
import pytest

from scanner.audit.codec import encode_batch
from scanner.audit.policy import AuditOptions
from scanner.cli import main
from scanner.config import ScanSettings
from scanner.emulator import EmulatorState, running, synthetic
from scanner.emulator.rules import DEFAULT_SCENES, verdict_for
from scanner.models import AuditItem, ObjectRef
from scanner.scan.filter import ObjectFilter
from scanner.uploaders import user_of
from tests.helpers import config, run_scan

USERS = "^albums/(?P<user>u[0-9]+)/"


def test_token_id_is_sent_and_bounded() -> None:
    body = encode_batch([AuditItem("a.jpg", "0", "u42"), AuditItem("b.jpg", "1", "x" * 129)],
                        AuditOptions())  # fmt: skip
    assert b"<UserInfo><TokenId>u42</TokenId></UserInfo>" in body
    assert body.count(b"<UserInfo>") == 1  # over 128 bytes: not sent (still stored)


def test_user_from_key() -> None:
    of = user_of(ScanSettings(user_from_key=USERS))
    assert (of("albums/u0042/2020/a.jpg"), of("other/a.jpg")) == ("u0042", "")
    assert user_of(ScanSettings())("albums/u1/a.jpg") == ""


@pytest.mark.parametrize(
    ("value", "says"),
    [("albums/(", "is not a regular expression"), ("albums/([^/]+)/", "needs a named group")],
)
def test_user_from_key_is_validated(
    tmp_path: Path, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[cos]\nbucket = "b-1250000000"\n[scan]\nuser_from_key = "{value}"\n')
    assert main(["config", "show", "--config", str(path)]) == 2
    assert says in capsys.readouterr().err


def test_report_by_user_matches_the_emulator_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = EmulatorState(bucket=synthetic(3000, 1), seed=1)  # the demo album

    async def scan() -> str:
        async with running(state) as url:
            cfg = config(url, tmp_path)
            from dataclasses import replace

            from scanner.scan.progress import Progress

            cfg = replace(cfg, scan=replace(cfg.scan, user_from_key=USERS))
            result = await run_scan(cfg, anyio.Event(), Progress())
            return result.outcome

    assert anyio.run(scan) == "done"
    # what the rules say: per user, images audited and flagged (Result 1)
    flt = ObjectFilter.from_settings(ScanSettings(), config("http://x", tmp_path).audit)
    audited: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    for key, obj in state.bucket.objects.items():
        match = re.search(USERS, key)
        ref = ObjectRef(key, obj.etag, obj.size, obj.last_modified, obj.storage_class)
        if not match or flt.reason(ref):
            continue
        verdict = verdict_for(key, obj, scenes=DEFAULT_SCENES)
        if not verdict.code:
            audited[match["user"]] += 1
            flagged[match["user"]] += verdict.result == 1
    # UserInfo.TokenId went with every image of a user (also those the service then refused)
    assert set(state.stats.users) == set(audited)
    assert all(state.stats.users[u] >= audited[u] for u in audited)
    store = str(tmp_path / "scan.db")
    monkeypatch.setenv("COS_SCANNER_SCAN_USER_FROM_KEY", USERS)
    assert main(["report", "--store", store, "--by-user", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["user"]: (r["audited"], r["flagged"]) for r in rows} == {
        u: (audited[u], flagged[u]) for u in audited
    }
    assert [r["flagged"] for r in rows] == sorted((r["flagged"] for r in rows), reverse=True)


def test_user_from_key_applies_at_report_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 25, item 2: a pattern set after the backlog names the uploaders of every stored
    verdict at report time (no re-billing); --by-user without one is exit 2 in one line."""
    state = EmulatorState(bucket=synthetic(600, 3), seed=3)

    async def scan() -> str:
        async with running(state) as url:
            from scanner.scan.progress import Progress

            return (await run_scan(config(url, tmp_path), anyio.Event(), Progress())).outcome

    assert anyio.run(scan) == "done"  # scanned with no user_from_key: no user stored
    billed = sum(state.stats.audits.values())
    store = str(tmp_path / "scan.db")
    monkeypatch.delenv("COS_SCANNER_SCAN_USER_FROM_KEY", raising=False)
    assert main(["report", "--store", store, "--by-user"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "--by-user needs [scan] user_from_key" in err[0]
    monkeypatch.setenv("COS_SCANNER_SCAN_USER_FROM_KEY", USERS)
    assert main(["report", "--store", store, "--by-user", "--format", "json"]) == 0
    users = {r["user"]: r["audited"] for r in json.loads(capsys.readouterr().out)}
    assert main(["report", "--store", store, "--format", "jsonl", "--state", "audited"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    want = Counter(m["user"] for r in rows if (m := re.search(USERS, r["key"])))
    assert users == dict(want)
    assert len(users) > 3
    named = [re.search(USERS, r["key"]) for r in rows]
    assert [r["user"] for r in rows] == [m["user"] if m else None for m in named]
    assert main(["report", "--store", store, "--user", min(users), "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == users[min(users)]
    assert sum(state.stats.audits.values()) == billed  # nothing was audited again
