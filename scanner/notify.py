"""Webhooks told how a scan ended: it flagged images, it failed, or it paused at a cap
(`[notify] on` chooses). Four formats:

- `json`: the event below as the body; with a `secret`, the header
  `X-Cos-Scanner-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>`.
- `wecom`: a WeCom group robot, `{"msgtype": "markdown", "markdown": {"content": ...}}`
  (at most 4,096 bytes).
- `dingtalk`: a DingTalk robot, `{"msgtype": "markdown", "markdown": {"title", "text"}}`; with
  a `secret`, the URL gets `timestamp` (ms) and `sign` = base64(HMAC-SHA256(secret,
  "<timestamp>\\n<secret>")), as the robot's security setting "sign" asks.
- `slack`: an incoming webhook, `{"text": ...}` in Slack's mrkdwn.

The json event (`schema_version` 1): `event` (flagged | failed | paused), `target`, `scan_id`,
`outcome`, `exit_code`, `counts` (listed, audited, flagged, review, failed), `labels` (flagged
images by label), `examples` (up to five flagged or suspicious keys, highest score first:
key, result, label, score), `review_url` (`[review] public_url`, else null), `error`.

Each webhook gets three attempts with backoff within `[notify] timeout` each; a receiver that
is down or slow costs the scan nothing but a warning, and the scan's exit code is its own. The
logs name a webhook by format and host only: its URL may hold a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio

from scanner.config import NotifySettings, Webhook

log = logging.getLogger(__name__)

ATTEMPTS = 3
SIGNATURE_HEADER = "X-Cos-Scanner-Signature"
_TITLES = {"flagged": "flagged images", "failed": "scan failed", "paused": "scan paused"}


def _text(event: dict[str, Any], bold: str) -> str:
    """The event for people, in markdown (`bold`: the platform's bold marker)."""
    c = event["counts"]
    lines = [
        f"{bold}cos-scanner: {_TITLES[event['event']]}{bold} - {event['target']} "
        f"(scan {event['scan_id']}, {event['outcome']}, exit {event['exit_code']})",
        f"audited {c['audited']:,}, flagged {c['flagged']:,}, to review {c['review']:,}, "
        f"failed {c['failed']:,}",
    ]
    if event["labels"]:
        lines.append("labels: " + ", ".join(f"{k} {v:,}" for k, v in event["labels"].items()))
    lines += [f"- {e['key']} ({e['label']} {e['score']})" for e in event["examples"]]
    if event["error"]:
        lines.append(f"error: {event['error']}")
    if event["review_url"]:
        lines.append(f"review: {event['review_url']}")
    return "\n".join(lines)


def request_of(
    hook: Webhook, event: dict[str, Any], now: float
) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of `event` for `hook`'s format."""
    headers = {"Content-Type": "application/json"}
    url = hook.url
    if hook.format == "json":
        body = json.dumps(event, ensure_ascii=False).encode()
        if hook.secret:
            mac = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={mac}"
        return url, body, headers
    if hook.format == "wecom":
        content = _text(event, "**").encode()[:4096].decode(errors="ignore")
        payload: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": content}}
    elif hook.format == "dingtalk":
        title = f"cos-scanner: {_TITLES[event['event']]}"
        payload = {"msgtype": "markdown", "markdown": {"title": title, "text": _text(event, "**")}}
        if hook.secret:
            stamp = str(int(now * 1000))
            signed = hmac.new(hook.secret.encode(), f"{stamp}\n{hook.secret}".encode(),
                              hashlib.sha256).digest()  # fmt: skip
            sign = quote(base64.b64encode(signed).decode(), safe="")
            url += ("&" if "?" in url else "?") + f"timestamp={stamp}&sign={sign}"
    else:  # slack
        payload = {"text": _text(event, "*")}
    return url, json.dumps(payload, ensure_ascii=False).encode(), headers


def host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[2]


async def _send(session: aiohttp.ClientSession, hook: Webhook, event: dict[str, Any],
                per_attempt: float) -> None:  # fmt: skip
    for attempt in range(ATTEMPTS):
        url, body, headers = request_of(hook, event, time.time())  # signed afresh each time
        try:
            with anyio.fail_after(per_attempt):
                async with session.post(url, data=body, headers=headers) as reply:
                    await reply.read()
                    if reply.status < 300:
                        return
                    why = f"HTTP {reply.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            why = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc) or "error"
        if attempt + 1 < ATTEMPTS:
            await anyio.sleep(2**attempt)
    log.warning("notify: %s webhook at %s not reached after %d attempts (%s)",
                hook.format, host_of(hook.url), ATTEMPTS, why)  # fmt: skip


async def notify(settings: NotifySettings, event: dict[str, Any]) -> None:
    """Send `event` to every webhook at once, if `[notify] on` names it; never raises."""
    if not settings.webhooks or event["event"] not in settings.on:
        return
    try:
        async with aiohttp.ClientSession() as session, anyio.create_task_group() as tg:
            for hook in settings.webhooks:
                tg.start_soon(_send, session, hook, event, settings.timeout)
    except Exception as exc:
        log.warning("notify: not sent: %s", exc)
