"""The bad-input matrix: every case gives one clear line and its exit code, never a
traceback, leaves the store valid with its verdicts intact, and never prints a secret."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import main
from scanner.emulator import DEFAULT_SECRET_ID
from tests.helpers import one_line, start_emulator

SECRET = "s3cr3t-KEY-never-printed"
TOKEN = "t0ken-never-printed"
LONG_KEY = "keys/" + "長" * 280 + "x.jpg"  # the longest key COS allows: 850 bytes
assert len(LONG_KEY.encode()) == 850


@dataclass
class Emu:
    url: str
    token_url: str


def post(url: str, path: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode())
    urllib.request.urlopen(req, timeout=5).close()


@pytest.fixture(scope="module")
def emu() -> Iterator[Emu]:
    main_proc, url = start_emulator("--objects", "600", "--seed", "3", "--secret-key", SECRET)
    tok_proc, token_url = start_emulator(
        "--objects",
        "10",
        "--secret-key",
        SECRET,
        "--session-token",
        TOKEN,
        "--token-expires-in",
        "-10",
    )
    with main_proc, tok_proc:
        try:
            post(
                url,
                "/_emulator/objects",
                {"put": {LONG_KEY: {}, "keys/new\nline.jpg": {}, "keys/bell\x07.jpg": {}}},
            )
            yield Emu(url, token_url)
        finally:
            main_proc.kill()
            tok_proc.kill()


@pytest.fixture(scope="module")
def baseline(emu: Emu, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one finished scan of albums/u0000*, copied for every case."""
    base = tmp_path_factory.mktemp("base")
    cfg = write(base, emu.url, store=base / "base.db")
    mp = pytest.MonkeyPatch()
    mp.setenv("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
    mp.setenv("TENCENTCLOUD_SECRET_KEY", SECRET)
    try:
        assert main(["scan", "--config", str(cfg), "--prefix", "albums/u0000"]) == 0
    finally:
        mp.undo()
    return base / "base.db"


def write(folder: Path, url: str, *, store: Path, cos: str = "", audit: str = "",
          bucket: str = "album-1250000000") -> Path:  # fmt: skip
    path = folder / "c.toml"
    path.write_text(
        f'[cos]\nbucket = "{bucket}"\nendpoint = "{url}"\n{cos}\n'
        f"[audit]\n{audit or 'qps = 500.0'}\n[scan]\nmax_attempts = 1\nbatch_wait = 0.05\n"
        f'[retry]\nattempts = 2\nwait_initial = 0.01\nwait_max = 0.02\n[store]\npath = "{store}"\n'
    )
    return path


@dataclass
class Case:
    name: str
    code: int
    says: str
    argv: list[str] = field(default_factory=lambda: ["scan", "--incremental"])
    cos: str = ""
    audit: str = ""
    bucket: str = "album-1250000000"
    raw_config: str | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    url: str = "main"
    store: str = "copy"  # copy | dir-missing | garbage | newer | empty | foreign
    check: Callable[[Path], None] | None = None


def failed_no_result(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT reason FROM scan_objects WHERE state = 'failed'").fetchall()
    assert ("NoResult",) in rows


def key_state(key: str, state: str, reason: str | None = None) -> Callable[[Path], None]:
    def check(db: Path) -> None:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT state, reason FROM scan_objects WHERE key = ? "
                               "ORDER BY scan_id DESC LIMIT 1", (key,)).fetchone()  # fmt: skip
        assert row == (state, reason), row

    return check


CASES = [
    Case("config file missing", 2, "does not exist", argv=["scan", "--config", "/nonexistent.toml"]),
    Case("bad toml", 2, "is not valid TOML", raw_config="[cos\nbucket = 1\n"),
    Case("unknown key", 2, "cos.bukket: unknown key", cos='bukket = "x"'),
    Case("wrong type", 2, "audit.concurrency: must be an integer (got 'many')", audit='concurrency = "many"'),
    Case("batch size 0", 2, "audit.batch_size: must be between 1 and 100 (got 0)", audit="batch_size = 0"),
    Case("batch size 101", 2, "audit.batch_size: must be between 1 and 100 (got 101)", audit="batch_size = 101"),
    Case("negative qps", 2, "audit.qps: must be between 0.01 and 100000 (got -5.0)", audit="qps = -5"),
    Case("empty bucket", 2, "cos.bucket: is required", bucket=""),
    Case("bucket without appid", 2, "cos.bucket: must be BucketName-APPID", bucket="mybucket"),
    Case("endpoint with a path", 2, "cos.endpoint: must have no path", cos="", url="path"),
    Case("credentials missing", 2, "TENCENTCLOUD_SECRET_ID",
         env={"TENCENTCLOUD_SECRET_ID": None, "TENCENTCLOUD_SECRET_KEY": None}),
    Case("wrong secret", 77, "credentials refused: cos: The Signature you specified is invalid",
         env={"TENCENTCLOUD_SECRET_KEY": "wrong-key"}),
    Case("unknown secret id", 77, "InvalidAccessKeyId", env={"TENCENTCLOUD_SECRET_ID": "AKIDnobody"}),
    Case("expired token", 77, "ExpiredToken", url="token", env={"TENCENTCLOUD_SESSION_TOKEN": TOKEN}),
    Case("unknown bucket", 2, "bucket nosuch-1250000000 not found in region ap-guangzhou: check "
         "[cos] bucket and region", bucket="nosuch-1250000000"),
    Case("wrong region", 2, "not found in region ap-shanghai", cos='region = "ap-shanghai"'),
    Case("refused connection", 1, "cannot connect to 127.0.0.1", url="closed"),
    Case("html answer", 1, "unreadable listing", faults={"body_mode": "html"}),
    Case("truncated xml", 1, "malformed XML", faults={"malformed_rate": 1.0}),
    Case("entity bomb", 1, "refused XML with a DTD", faults={"body_mode": "bomb"}),
    Case("100 MB body", 1, "over the 16777216-byte limit", faults={"body_mode": "huge"}),
    Case("fewer JobsDetail than inputs", 3, "", argv=["scan", "--force", "--prefix", "albums/u0001"],
         faults={"body_mode": "drop_one", "targets": ["audit"]}, check=failed_no_result),
    Case("unknown DataId", 3, "", argv=["scan", "--force", "--prefix", "albums/u0001"],
         faults={"body_mode": "unknown_id", "targets": ["audit"]}, check=failed_no_result),
    Case("unwritable store", 1, "is not a directory", store="dir-missing"),
    Case("store not sqlite", 1, "is not usable: file is not a database", store="garbage"),
    Case("store from a newer schema", 1, "newer than this cos-scanner knows", store="newer"),
    Case("dry run with nothing to do, wrong key", 77, "SignatureDoesNotMatch",
         argv=["scan", "--dry-run", "--prefix", "albums/u0000"],
         env={"TENCENTCLOUD_SECRET_KEY": "wrong-key"}),
    # every command says refused credentials the same way (check said "HTTP 403 without an
    # error body": its GET of the image's thumbnail answers a bare 403)
    Case("check with a wrong key", 77, "credentials refused: ",
         argv=["check", "albums/u00001/2020/02/IMG_0000001.jpg"],
         env={"TENCENTCLOUD_SECRET_KEY": "wrong-key"}),
    Case("store is an empty file", 2, "is an empty file, not a cos-scanner store", store="empty"),
    Case("store is another database", 2, "another program's SQLite database", store="foreign"),
    Case("850-byte key", 0, "", argv=["scan", "--force", "--prefix", "keys/"],
         check=key_state(LONG_KEY, "audited")),
    Case("key with a newline", 0, "", argv=["scan", "--force", "--prefix", "keys/"],
         check=key_state("keys/new\nline.jpg", "audited")),
    Case("key with a control character", 0, "", argv=["scan", "--force", "--prefix", "keys/"],
         check=key_state("keys/bell\x07.jpg", "skipped", "unencodable-key")),
    Case("max-images 0", 2, "--max-images must be >= 1", argv=["scan", "--max-images", "0"]),
    Case("report bad state", 2, "--state: unknown ['gone']", argv=["report", "--state", "gone"]),
    # issue "Faults cost nothing", item 5: every numeric setting finite and sane (tracebacks,
    # or an ETA of 2.7e290 h, before)
    Case("qps inf", 2, "audit.qps: must be a finite number", audit="qps = inf"),
    Case("qps 1e-300", 2, "audit.qps: must be between 0.01 and 100000", audit="qps = 1e-300"),
    Case("timeout inf", 2, "cos.timeout: must be a finite number", cos="timeout = inf"),
    Case("audit timeout nan", 2, "audit.timeout: must be a finite number", audit="timeout = nan"),
    Case("wait_max inf from env", 2, "retry.wait_max: must be a finite number",
         env={"COS_SCANNER_RETRY_WAIT_MAX": "inf"}),
    Case("unit_price inf from env", 2, "audit.unit_price: must be a finite number",
         env={"COS_SCANNER_AUDIT_UNIT_PRICE": "Infinity"}),
    Case("qps 1e-300 from env", 2, "audit.qps: must be between", env={"COS_SCANNER_AUDIT_QPS": "1e-300"}),
    # item 6: a config error never echoes a value (the secret, here, in the wrong place)
    Case("secret in the file", 2, "cos.secret_key: unknown key", cos=f'secret_key = "{SECRET}"'),
    Case("secret in an env key", 2, "cos.secret: unknown key (environment variable "
         "COS_SCANNER_COS_SECRET)", env={"COS_SCANNER_COS_SECRET": SECRET}),
    # issue 25 item 5: a mistyped variable is named, not silently not applied
    Case("unknown env section", 2, "environment variable 'COS_SCANNER_AUDT_QPS': no such setting",
         env={"COS_SCANNER_AUDT_QPS": "5"}),
    Case("endpoint with credentials", 2, "cos.endpoint: must not carry credentials", url="userinfo"),
    # issue "Scale to 10^9 objects": its flags and keys
    Case("window 25:00", 2, "--window must be HH:MM-HH:MM", argv=["scan", "--window", "25:00-06:00"]),
    Case("window in the file", 2, "scan.window: must be HH:MM-HH:MM", raw_config='[cos]\nbucket = '
         '"album-1250000000"\n[scan]\nwindow = "1-6"\n'),
    Case("shard 4/4", 2, "--shard '4/4': need 0 <= i < N", argv=["scan", "--shard", "4/4"]),
    Case("workers 0", 2, "--workers must be 1..64", argv=["scan", "--workers", "0"]),
    Case("daily cap negative", 2, "scan.daily_cap: must be", env={"COS_SCANNER_SCAN_DAILY_CAP": "-1"}),
    Case("list_concurrency 0", 2, "cos.list_concurrency: must be between 1 and 64",
         cos="list_concurrency = 0"),
    Case("inventory missing", 2, "inventory error: '/nonexistent/manifest.json': no such file",
         argv=["scan", "--inventory", "/nonexistent/manifest.json"]),
    # issue "Every path ends where the user expects": modes never combine; side files
    Case("incremental and force", 2, "argument --force: not allowed with argument --incremental",
         argv=["scan", "--incremental", "--force"]),
    Case("retry-failed and force", 2, "not allowed with argument --retry-failed",
         argv=["scan", "--retry-failed", "--force"]),
    Case("config is a fifo", 2, "is not a regular file", argv=["scan", "--config", "FIFO"]),
    Case("config is /dev/zero", 2, "is not a regular file", argv=["scan", "--config", "/dev/zero"]),
    Case("config over 1 MiB", 2, "is larger than 1 MiB", raw_config="# " + "x" * (1 << 20) + "\n"),
    Case("report of an unknown scan", 2, "--scan 99: no such scan in", argv=["report", "--scan", "99"]),
]  # fmt: skip


def with_fifo(argv: list[str], tmp: Path) -> list[str]:
    """`FIFO` in a case's argv: a named pipe nobody writes (opening it would block for ever)."""
    if "FIFO" not in argv:
        return argv
    fifo = tmp / "config.fifo"
    os.mkfifo(fifo)
    return [str(fifo) if a == "FIFO" else a for a in argv]


def verdict_rows(db: Path) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT target, key, etag, result, label, score, raw FROM verdicts "
                            "ORDER BY target, key").fetchall()  # fmt: skip


def prepare_store(case: Case, tmp: Path, baseline: Path) -> Path:
    db = tmp / "store.db"
    if case.store == "dir-missing":
        return tmp / "no" / "such" / "store.db"
    if case.store == "garbage":
        db.write_bytes(b"GIF89a not a database" * 50)
    elif case.store == "newer":
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA user_version = 42")
    elif case.store == "empty":  # a copy that failed, a `touch`
        db.write_bytes(b"")
    elif case.store == "foreign":  # another program's database at the path
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    else:
        shutil.copy(baseline, db)
    return db


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, emu: Emu, baseline: Path, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET)
    monkeypatch.delenv("TENCENTCLOUD_SESSION_TOKEN", raising=False)
    for name, value in case.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    url = {"main": emu.url, "token": emu.token_url, "closed": "http://127.0.0.1:9",
           "path": emu.url + "/some/path",
           "userinfo": emu.url.replace("http://", f"http://admin:{SECRET}@")}[case.url]  # fmt: skip
    db = prepare_store(case, tmp_path, baseline)
    before = verdict_rows(db) if case.store == "copy" else None
    cfg = write(tmp_path, url, store=db, cos=case.cos, audit=case.audit, bucket=case.bucket)
    if case.raw_config is not None:
        cfg.write_text(case.raw_config)
    argv = case.argv if "--config" in case.argv else [*case.argv, "--config", str(cfg)]
    argv = with_fifo(argv, tmp_path)
    post(emu.url, "/_emulator/faults", {"body_mode": "", "malformed_rate": 0.0,
                                        "targets": ["list", "audit"], **case.faults})  # fmt: skip
    try:
        code = main(argv)
    finally:
        post(emu.url, "/_emulator/faults", {"body_mode": "", "malformed_rate": 0.0,
                                            "targets": ["list", "audit"]})  # fmt: skip
    out, err = capsys.readouterr()
    for text in (out, err):
        assert SECRET not in text
        assert TOKEN not in text
        assert "Traceback" not in text
    assert code == case.code, err
    if case.code:
        said = one_line(err)  # one line, or one per config problem under a header line
        assert case.says in said, said
        assert "got" not in said or "unknown key" not in said
    if before is not None:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        after = verdict_rows(db)
        assert set(before) <= set(after)  # no committed verdict lost or changed
        summary = Path(str(db) + ".summary.json")
        if summary.exists():
            assert SECRET not in summary.read_text()
    elif case.store in ("garbage", "newer"):
        raw = db.read_bytes()
        assert (
            raw.startswith(b"GIF89a")
            if case.store == "garbage"
            else raw[:16] == b"SQLite format 3\x00"
        )
    if case.check is not None:
        case.check(db)
