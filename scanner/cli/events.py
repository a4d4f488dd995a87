"""How a scan run ended, told to people: the `[notify]` event of a run (flagged, failed or
paused), built from the store and sent by `notify.py`. Never raises."""

from __future__ import annotations

import logging
from typing import Any

from scanner.cli.commands import EXIT_PAUSED
from scanner.config import Config
from scanner.errors import ScannerError
from scanner.notify import notify
from scanner.store import Store

log = logging.getLogger(__name__)


def _kind(code: int, flagged: int) -> str | None:
    if code in (0, 3):
        return "flagged" if flagged else None
    if code == EXIT_PAUSED:
        return "paused"
    if code in (75, 130):  # another run holds the target; stopped by a person: no news
        return None
    return "failed"


async def tell(config: Config, target: str, since: float, code: int, error: str = "") -> None:
    """The run's event to the webhooks (when `[notify] on` names its kind)."""
    if not config.notify.webhooks:
        return
    event: dict[str, Any] = {"schema_version": 1, "target": target, "scan_id": None,
                             "outcome": None, "exit_code": code, "labels": {}, "examples": [],
                             "review_url": config.review.public_url or None,
                             "error": error or None}  # fmt: skip
    counts = dict.fromkeys(("listed", "audited", "flagged", "review", "failed"), 0)
    try:
        async with await Store.open(config.store.path, readonly=True) as store:
            scan_id = await store.ran_scan(target, since)
            if scan_id is not None:
                status = await store.scan(scan_id)
                event.update(scan_id=scan_id, outcome=status.state)
                counts = {k: getattr(status, k) for k in counts}
                if status.flagged or status.review:
                    event["labels"] = await store.labels(scan_id)
                    event["examples"] = await store.flagged_examples(scan_id)
    except ScannerError as exc:  # the store is why the run failed: tell what is known
        log.debug("notify: store not read: %s", exc)
    event["counts"] = counts
    kind = _kind(code, counts["flagged"] + counts["review"])
    if kind is None:
        return
    event["event"] = kind
    await notify(config.notify, event)
