"""Read-only summaries of scans, as text tables and JSON. Prints nothing itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from scanner.config import AuditSettings
from scanner.jobspend import Counts as Jobs
from scanner.jobspend import job_lines, job_verdicts, media_lines
from scanner.models import ScanStatus

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """A duration in the units that fit it: 0.4s, 42s, 4m05s, 3h07m, 2d04h."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    whole = int(seconds)
    d, rest = divmod(whole, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d{h:02d}h"
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _tally(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def rates(
    status: ScanStatus, now: float | None = None, expected: int | None = None
) -> dict[str, float | None]:
    """Images/s of the current (or last) run, elapsed seconds, and ETA when computable: from
    the scan's own size once listing is done, before that from `expected` (what the target's
    last finished scan listed)."""
    now = now or time.time()
    end = status.finished_at or (now if status.state == "running" else status.updated_at)
    elapsed = max(0.0, end - status.started_at)
    run_start = status.run_started_at or status.started_at
    run_elapsed = (now if status.state == "running" else status.updated_at) - run_start
    rate = None  # not from nothing: no image yet, or less than a second to divide by
    if status.run_audited and run_elapsed >= 1:
        rate = status.run_audited / run_elapsed
    eta = None
    total = status.listed if status.listing_done else expected
    if status.state != "done" and rate and total:
        finished = status.audited + status.failed + status.skipped
        eta = max(0, total - finished) / rate
    return {"rate": rate, "elapsed": elapsed, "eta": eta}


def billed_images(status: ScanStatus, jobs: Jobs | None = None) -> int:
    """Images the service billed for this scan: its audits, less the verdicts it shared and
    those of moderation jobs (videos, voice, documents: `jobs`, billed by their own units)."""
    return max(0, status.audited - status.shared - job_verdicts(jobs or {}))


def spend_of(images: int, audit: AuditSettings | None) -> dict[str, Any]:
    """Units and price of `images` billed images under `audit`'s scenes and prices (None where
    unknown: the scenes of a BizType policy, or no unit_price)."""
    scenes = audit.scenes_per_image if audit is not None else None
    units = None if scenes is None else images * scenes
    price = None
    if units is not None and audit is not None and audit.unit_price:
        price = round(units * audit.unit_price, 6)
    currency = audit.currency if audit is not None else None
    return {"billed_units": units, "price": price, "currency": currency}


def _billed_text(status: ScanStatus, audit: AuditSettings | None, jobs: Jobs | None) -> str:
    spend = spend_of(billed_images(status, jobs), audit)
    if spend["billed_units"] is None:
        return "images (units unknown: set [audit] billed_scenes)"
    text = f"images = {spend['billed_units']:,} units"
    if spend["price"] is not None:
        text += f" = {spend['price']:,.2f} {spend['currency']}"
    return text


def shown_mode(status: ScanStatus) -> str:
    """The scan's mode as users asked for it: a --force scan is stored as a full one that
    takes no verdict made before it began."""
    return "force" if status.reuse_since and status.mode == "full" else status.mode


#: The version of the scan record `status --json` lists and summary.json holds (README,
#: "The scan record"): fields are added within a version, never renamed or removed.
SCAN_RECORD_VERSION = 1


def status_json(
    status: ScanStatus,
    expected: int | None = None,
    *,
    review_queue: Mapping[str, int] | None = None,
    heartbeat_at: float | None = None,
    audit: AuditSettings | None = None,
    jobs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The scan record: one scan as `status --json` lists it and summary.json holds it
    (`jobs`: `jobspend.job_spend` of its moderation jobs, per class)."""
    r = rates(status, expected=expected)
    images = billed_images(status, jobs)
    return {
        "schema_version": SCAN_RECORD_VERSION,
        "scan_id": status.id,
        "target": status.target,
        "mode": shown_mode(status),
        "state": status.state,
        "listing_done": status.listing_done,
        "listed": status.listed,
        "audited": status.audited,
        "flagged": status.flagged,
        "review": status.review,
        "failed": status.failed,
        "skipped": status.skipped,
        "pending": status.pending,
        "requests": status.requests,
        "maybe_billed_twice": status.maybe_double,
        "billed_images": images,
        **spend_of(images, audit),
        "jobs": {k: dict(v) for k, v in (jobs or {}).items()},
        "frozen": status.frozen,
        "shared": status.shared,
        "error": status.error,
        "started_at": status.started_at,
        "updated_at": status.updated_at,
        "finished_at": status.finished_at,
        "heartbeat_at": heartbeat_at,
        "review_queue": dict(review_queue) if review_queue is not None else None,
        "rate": None if r["rate"] is None else round(r["rate"], 2),
        "elapsed": round(r["elapsed"] or 0.0, 1),
        "eta": None if r["eta"] is None else round(r["eta"], 1),
        "eta_estimated": r["eta"] is not None and not status.listing_done,
        "policy": status.policy,
    }


def status_table(
    scans: Sequence[ScanStatus],
    expected: Mapping[int, int | None] | None = None,
    heartbeats: Mapping[int, float] | None = None,
    now: float | None = None,
) -> str:
    """The scans as a table; `heartbeats`: the last heartbeat of each dead scan (state
    `dead`: running in the store, its process gone or silent past the lease's staleness)."""
    now = time.time() if now is None else now
    head = ("scan", "state", "mode", "started", "listed", "audited", "flagged", "review",
            "failed", "skipped", "pending", "shared", "billed2x?", "rate/s", "elapsed", "eta",
            "target")  # fmt: skip
    left = {1, 2, 3, 15}
    rows = [head]
    for s in scans:
        r = rates(s, expected=(expected or {}).get(s.id))
        eta = "" if r["eta"] is None else duration(r["eta"])
        if eta and not s.listing_done:
            eta = "~" + eta  # estimated from the last finished scan's size
        started = datetime.fromtimestamp(s.started_at).strftime("%Y-%m-%d %H:%M")
        rows.append(
            (
                str(s.id),
                s.state,
                shown_mode(s),
                started,
                f"{s.listed:,}",
                f"{s.audited:,}",
                f"{s.flagged:,}",
                f"{s.review:,}",
                f"{s.failed:,}",
                f"{s.skipped:,}",
                f"{s.pending:,}",
                f"{s.shared:,}",
                f"{s.maybe_double:,}",
                "-" if r["rate"] is None or s.state == "dead" else f"{r['rate']:.1f}",
                duration(r["elapsed"] or 0),
                "" if s.state == "dead" else eta,
                s.target,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.extend(
        f"scan {s.id}: dead (last heartbeat {duration(now - (heartbeats or {})[s.id])} ago; "
        "run scan to resume)"
        for s in scans
        if s.state == "dead" and s.id in (heartbeats or {})
    )
    lines.extend(f"scan {s.id} error: {s.error}" for s in scans if s.error)
    return "\n".join(lines)


def summary_text(
    status: ScanStatus,
    *,
    outcome: str,
    skips: Mapping[str, int],
    failures: Mapping[str, int],
    labels: Mapping[str, int],
    run_seconds: float,
    run_audited: int,
    scenes: int | None = None,
    audit: AuditSettings | None = None,
    jobs: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The table printed when a scan run ends (`scenes`: billed units per image, if known;
    `jobs`: what its moderation jobs were billed, per class)."""
    this_run = "nothing audited"
    if run_audited:
        this_run = f"{run_audited:,} images in {duration(run_seconds)}"
        if run_seconds >= 1:  # a rate over less than a second is noise
            this_run += f" ({run_audited / run_seconds:.1f} images/s)"
    lines = [
        f"scan {status.id} of {status.target}: {outcome}",
        f"  listed    {status.listed:>10,}",
        f"  audited   {status.audited:>10,}   flagged (Result 1) {status.flagged:,}, "
        f"review (Result 2) {status.review:,}",
        f"  failed    {status.failed:>10,}   {_tally(failures)}".rstrip(),
        f"  skipped   {status.skipped:>10,}   {_tally(skips)}".rstrip(),
        f"  pending   {status.pending:>10,}",
        f"  deleted   {status.deleted:>10,}   keys gone from the bucket since the last scan",
        f"  requests  {status.requests:>10,}",
        f"  billed    {billed_images(status, jobs):>10,}   {_billed_text(status, audit, jobs)}",
        *job_lines(jobs or {}),
        *(
            [
                f"  shared    {status.shared:>10,}   audited without paying: copies of audited "
                "content and keys another scan had just audited"
                + (f"; {status.shared * scenes:,} units saved" if scenes else "")
            ]
            if status.shared
            else []
        ),
        *(
            [f"  frozen    {status.frozen:>10,}   by the service at audit time"]
            if status.frozen
            else []
        ),
        *(
            [
                f"  twice?    {status.maybe_double:>10,}   images possibly billed twice (resent "
                "after a lost answer; see README)"
            ]
            if status.maybe_double
            else []
        ),
        f"  this run  {this_run}",
    ]
    if labels:
        lines.append(f"  labels    {_tally(labels)}")
    if status.error:
        lines.append(f"  error     {status.error}")
    return "\n".join(lines)


def dry_run_text(est: Mapping[str, Any], audit: AuditSettings) -> str:
    """The `scan --dry-run` estimate (`Estimate.as_json`) for people."""
    lines = [f"dry run of {est['target']}: nothing audited, nothing written"]
    if est["nothing_to_do"]:
        lines.append(
            "  plan         the last scan is done: `scan` would not list or bill it again; "
            "objects new or changed since: --incremental (--retry-failed, --force: a new scan)"
        )
    elif est["resumes_scan"] is not None:
        lines.append(
            f"  plan         resume scan {est['resumes_scan']} ({est['mode']}): "
            f"{est['already_done']:,} objects already done are not sent again"
        )
    else:
        lines.append(f"  plan         a new {est['mode']} scan")
    skipped = est["skipped"]
    skips = ", ".join(f"{k} {v:,}" for k, v in skipped.items()) or "none"
    lines += [
        f"  objects      {est['objects']:>12,}",
        f"  images       {est['images']:>12,}   {est['bytes'] / 2**30:,.2f} GiB"
        + ("   (capped by --max-images)" if est["capped_at_max_images"] else ""),
        *media_lines(est.get("media") or {}, audit.currency),
        f"  skipped      {sum(skipped.values()):>12,}   {skips}",
    ]
    if est["verdicts_reused"]:
        lines.append(
            f"  reused       {est['verdicts_reused']:>12,}   not billed: the key's verdict from "
            "another scan of the bucket still stands"
        )
    if est["copies_not_billed"]:
        saved = est["saved_units"]
        lines.append(
            f"  copies       {est['copies_not_billed']:>12,}   not billed: the same content "
            "(ETag, size) as an image audited once ([scan] dedupe)"
            + (f"; {saved:,} units saved" if saved else "")
        )
    scenes, units = est["scenes_per_image"], est["billed_units"]
    if units is None:
        low, high = est["billed_units_range"]
        lines.append(
            f"  billable     {'unknown':>12}   between {low:,} and {high:,} units (1-7 scenes per "
            "image): the BizType policy's scenes are not visible here; set [audit] "
            "billed_scenes (or detect_type)"
        )
    else:
        source = "billed_scenes" if audit.billed_scenes else "detect_type"
        lines.append(f"  billable     {units:>12,}   units ({scenes} scene(s) per image, {source})")
    if est["large_image_units"]:
        lines.append(
            f"  large image  {est['large_image_units']:>12,}   images 5-32 MB pay the "
            "LargeImageDetect compression fee"
        )
    price = est["price"]
    if price is None:
        lines.append(
            f"  price        {'unknown':>12}   set [audit] unit_price"
            + (" and large_image_price" if est["large_image_units"] else "")
            + (" and billed_scenes" if units is None else "")
        )
    else:
        lines.append(f"  price        {price:>12,.2f}   at [audit] unit_price {audit.unit_price:g}")
    seconds = est["duration_s"]
    lines.append(
        f"  duration   >= {duration(seconds):>12}   at {audit.qps:g} requests/s "
        f"x {audit.batch_size} images"
    )
    return "\n".join(lines)
