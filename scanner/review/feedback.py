"""Decisions that say the service was wrong, sent to it (`[review] report_badcase`).

The page queues a case in the store when a decision contradicts a CI verdict (an approve of a
flagged image, a block of one it called normal; `Store.queue_badcases`); this task sends what
is due while the page runs (`POST /report/badcase`, `scanner.audit.badcase`), each case once:
a failure the service may get over (a timeout, throttling, a 5xx, refused credentials) is
tried again later, another (a 4xx) is failed for good and counted. The picture's `Url` is a
presigned GET valid for a week (with temporary keys, as long as they are: the reference says
nothing of when Tencent fetches it), a URL list's entry as it is.
"""

from __future__ import annotations

import logging
import time

import anyio

from scanner.audit.badcase import URL_SECONDS, Badcase, report_badcase
from scanner.config import AuditSettings, CosSettings
from scanner.cos.client import HttpClient, ci_service, cos_service
from scanner.errors import AuthError, RemoteError, StoreError
from scanner.store import QueuedBadcase, Store

log = logging.getLogger(__name__)

WAITS = (60.0, 300.0, 1800.0, 3600.0, 6 * 3600.0)  # after each failed attempt; then failed


async def send_feedback(
    store: Store,
    http: HttpClient,
    cos: CosSettings,
    audit: AuditSettings,
    *,
    poll: float = 1.0,
    waits: tuple[float, ...] = WAITS,
) -> None:
    """Send the due cases, then look again every `poll` seconds, until cancelled; a store
    that fails (busy, a full disk) is logged and looked at again, never ending the page."""
    while True:
        try:
            await _send_due(store, http, cos, audit, waits)
        except StoreError as exc:
            log.warning("badcases: %s; trying again", exc)
        await anyio.sleep(poll)


async def _send_due(
    store: Store, http: HttpClient, cos: CosSettings, audit: AuditSettings,
    waits: tuple[float, ...],
) -> None:  # fmt: skip
    ci, objects = ci_service(cos, audit), cos_service(cos)
    for case in await store.due_badcases(time.time()):
        url = case.key
        if not case.target.startswith("urls://"):
            url = http.presign(objects, case.key, URL_SECONDS)
        badcase = Badcase(url, case.label, case.suggested_label, case.job_id,
                          case.moderated_at)  # fmt: skip
        try:
            request_id = await report_badcase(http, ci, badcase, audit.timeout)
        except RemoteError as exc:
            wait = _wait(exc, case, waits)
            later = f"; trying again in {wait:.0f}s" if wait is not None else "; given up"
            log.warning("badcase %r: %s%s", case.key, exc, later)
            await store.badcase_failed(case, str(exc), wait=wait)
        else:
            log.info("badcase %r sent (%s -> %s) [request id %s]",
                     case.key, case.label, case.suggested_label, request_id)  # fmt: skip
            await store.badcase_sent(case, request_id)


def _wait(exc: RemoteError, case: QueuedBadcase, waits: tuple[float, ...]) -> float | None:
    """Seconds before the next attempt, or None: failed for good."""
    if not (exc.retryable or isinstance(exc, AuthError)) or case.attempts >= len(waits):
        return None
    return waits[case.attempts]
