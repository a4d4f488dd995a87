"""Webhooks (issue 26, item 4): each format's documented shape, received by a local receiver
from real scans against the emulator; signatures that verify; a receiver that is down costs
the scan nothing; URLs and secrets never printed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from scanner.cli import main
from scanner.config import Webhook
from scanner.emulator import DEFAULT_SECRET_KEY
from scanner.notify import SIGNATURE_HEADER, request_of
from tests.helpers import cli_config, emulator_process

SECRET = "hook-secret-123"
EVENT: dict[str, Any] = {
    "schema_version": 1, "event": "flagged", "target": "cos://b.ap-guangzhou/", "scan_id": 3,
    "outcome": "done", "exit_code": 0, "error": None, "review_url": "https://review.example/",
    "counts": {"listed": 10, "audited": 9, "flagged": 2, "review": 1, "failed": 0},
    "labels": {"Porn": 2, "Ads": 1},
    "examples": [{"key": "albums/u1/a.jpg", "result": 1, "label": "Porn", "score": 97}],
}  # fmt: skip


def dingtalk_sign(secret: str, stamp: str) -> str:
    mac = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def test_each_format_has_its_documented_shape() -> None:
    url, body, headers = request_of(Webhook("https://h/json", "json", SECRET), EVENT, 1.0)
    assert json.loads(body) == EVENT
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={mac}"
    _, body, _ = request_of(Webhook("https://qyapi.weixin.qq.com/x?key=k", "wecom"), EVENT, 1.0)
    wecom = json.loads(body)
    assert wecom["msgtype"] == "markdown"
    assert "albums/u1/a.jpg" in wecom["markdown"]["content"]
    assert len(wecom["markdown"]["content"].encode()) <= 4096
    url, body, _ = request_of(Webhook("https://oapi.dingtalk.com/robot/send?access_token=t",
                                      "dingtalk", SECRET), EVENT, 1700000000.123)  # fmt: skip
    query = parse_qs(urlsplit(url).query)
    assert query["timestamp"] == ["1700000000123"]
    assert query["sign"] == [dingtalk_sign(SECRET, "1700000000123")]
    ding = json.loads(body)
    assert ding["msgtype"] == "markdown"
    assert set(ding["markdown"]) == {"title", "text"}
    _, body, _ = request_of(Webhook("https://hooks.slack.com/services/x", "slack"), EVENT, 1.0)
    assert "flagged 2" in json.loads(body)["text"]


class Receiver(http.server.ThreadingHTTPServer):
    """A local webhook receiver: records (path, query, headers, body) of each POST."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, list[str]], dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                parts = urlsplit(self.path)
                outer.got.append((parts.path, parse_qs(parts.query), dict(self.headers), body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"errcode": 0}')

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with emulator_process("--objects", "300", "--seed", "91") as url:
        yield url


def hooks(base: str) -> str:
    return (
        f'[[notify.webhooks]]\nurl = "{base}/json"\nformat = "json"\nsecret = "{SECRET}"\n'
        f'[[notify.webhooks]]\nurl = "{base}/wecom?key=wecom-key-42"\nformat = "wecom"\n'
        f'[[notify.webhooks]]\nurl = "{base}/ding?access_token=tok"\nformat = "dingtalk"\n'
        f'secret = "{SECRET}"\n'
        f'[[notify.webhooks]]\nurl = "{base}/slack"\nformat = "slack"\n'
        '[review]\npublic_url = "https://review.example.com/"\n'
    )


def test_a_scan_that_flags_tells_every_webhook_once(
    emulator: str, receiver: Receiver, tmp_path: Path, creds: None,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    cfg = cli_config(tmp_path, emulator)
    cfg.write_text(cfg.read_text() + hooks(receiver.url))
    assert main(["scan", "--config", str(cfg)]) in (0, 3)
    by_path = {path: (query, headers, body) for path, query, headers, body in receiver.got}
    assert sorted(by_path) == ["/ding", "/json", "/slack", "/wecom"]  # each once
    assert len(receiver.got) == 4
    query, headers, body = by_path["/json"]
    event = json.loads(body)
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={mac}"
    assert event["event"] == "flagged"
    assert event["counts"]["flagged"] + event["counts"]["review"] > 0
    assert event["examples"]
    assert event["review_url"] == "https://review.example.com/"
    assert sum(event["labels"].values()) == event["counts"]["flagged"] + event["counts"]["review"]
    query, _, _ = by_path["/ding"]
    assert abs(int(query["timestamp"][0]) / 1000 - time.time()) < 120
    assert query["sign"] == [dingtalk_sign(SECRET, query["timestamp"][0])]
    assert json.loads(by_path["/wecom"][2])["msgtype"] == "markdown"
    assert by_path["/wecom"][0]["key"] == ["wecom-key-42"]
    assert "flagged" in json.loads(by_path["/slack"][2])["text"]
    err = capsys.readouterr().err
    assert "wecom-key-42" not in err
    assert SECRET not in err
    # `[notify] on` chooses: an incremental night that flags nothing tells nobody
    receiver.got.clear()
    assert main(["scan", "--config", str(cfg), "--incremental"]) in (0, 3)
    assert receiver.got == []
    # config show never prints a webhook's URL or secret
    assert main(["config", "show", "--config", str(cfg)]) == 0
    shown = capsys.readouterr().out
    assert "notify.webhooks" in shown
    assert "wecom-key-42" not in shown
    assert SECRET not in shown


def test_a_failed_run_is_told_and_a_receiver_that_is_down_costs_nothing(
    emulator: str, receiver: Receiver, tmp_path: Path, creds: None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    cfg = cli_config(tmp_path, emulator, store=str(tmp_path / "f.db"))
    cfg.write_text(cfg.read_text() + f'[[notify.webhooks]]\nurl = "{receiver.url}/json"\n')
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "wrong")
    assert main(["scan", "--config", str(cfg)]) == 77
    ((_, _, _, body),) = receiver.got
    event = json.loads(body)
    assert event["event"] == "failed"
    assert event["exit_code"] == 77
    assert "Signature" in event["error"]
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
    down = cli_config(tmp_path, emulator, store=str(tmp_path / "d.db"))
    gone = "http://127.0.0.1:9/nobody"  # the discard port: nobody listens
    down.write_text(down.read_text() + f'[[notify.webhooks]]\nurl = "{gone}"\nformat = "slack"\n')
    capsys.readouterr()
    started = time.monotonic()
    assert main(["scan", "--config", str(down)]) in (0, 3)  # the scan's own outcome
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert "slack webhook at 127.0.0.1:9 not reached after 3 attempts" in err
