"""What the moderation jobs of a scan (or of a target) were billed, per class, in units and
price where known (reference 12.6): a video's frames x scenes at `[video] unit_price` and its
soundtrack's minutes at `[audio] unit_price`, a voice note's minutes at `[audio] unit_price`,
a document's pages x scenes at `[document] unit_price`. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scanner.config import Config

LABELS = {"video": "videos", "audio": "voice notes", "document": "documents"}
#: What each class's figure counts (frames and pages are billed per scene).
MEASURE = {"video": "frames", "audio": "minutes", "document": "pages"}
#: The figures per class the store counts (`Store.job_counts`).
Counts = Mapping[str, Mapping[str, float]]


def job_spend(counts: Counts, config: Config) -> dict[str, dict[str, Any]]:
    """Per class: the store's counts, `minutes` of sound, `billed_units` (frames or pages x
    scenes; None when the scenes are unknown) and `price` (None without a unit price)."""
    scenes = config.audit.scenes_per_image
    out: dict[str, dict[str, Any]] = {}
    for kind, c in counts.items():
        row: dict[str, Any] = dict(c)
        minutes = round(float(c.get("seconds", 0)) / 60, 2)
        per_scene = {"video": c.get("frames", 0), "document": c.get("pages", 0)}.get(kind, 0)
        units = None if scenes is None else int(per_scene) * scenes
        unit_price = {"video": config.video.unit_price, "document": config.document.unit_price}
        price: float | None = None
        if kind == "audio":
            units = None
            price = round(minutes * config.audio.unit_price, 6) if config.audio.unit_price else None
        elif units is not None and unit_price.get(kind):
            price = units * unit_price[kind]
            if kind == "video" and minutes and config.audio.unit_price:
                price += minutes * config.audio.unit_price
            price = round(price, 6)
        row.update(minutes=minutes, billed_units=units, price=price, currency=config.audit.currency)
        out[kind] = row
    return out


def job_verdicts(counts: Counts) -> int:
    """Verdicts the jobs made (not images: the scan's images billed are the rest)."""
    return sum(int(c.get("audited", 0)) for c in counts.values())


def job_lines(spend: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The summary's lines, one per class."""
    lines = []
    for kind, r in spend.items():
        what = {"video": f"{r['frames']:,} frames", "audio": f"{r['minutes']:,} minutes",
                "document": f"{r['pages']:,} pages"}.get(kind, "")  # fmt: skip
        if kind == "video" and r["minutes"]:
            what += f" + {r['minutes']:,} minutes of sound"
        if r["billed_units"] is not None:
            what += f" = {r['billed_units']:,} units"
        if r["price"] is not None:
            what += f" = {r['price']:,.2f} {r['currency']}"
        twice = f"; {r['maybe_double']:,} possibly billed twice" if r["maybe_double"] else ""
        lines.append(f"  {kind:<9} {r['jobs']:>10,}   jobs, {r['audited']:,} with a verdict: "
                     f"{what}{twice}")  # fmt: skip
    return lines


def job_columns(jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A spend row's job figures as flat columns (CSV): counts, units and their price."""
    v, a, d = (jobs.get(k, {}) for k in ("video", "audio", "document"))
    prices = [r["price"] for r in jobs.values() if r.get("price") is not None]
    return {"videos": v.get("jobs", 0), "video_frames": v.get("frames", 0),
            "voice_notes": a.get("jobs", 0),
            "sound_minutes": round(v.get("minutes", 0) + a.get("minutes", 0), 2),
            "documents": d.get("jobs", 0), "document_pages": d.get("pages", 0),
            "jobs_price": round(sum(prices), 6) if prices else None}  # fmt: skip


def media_lines(media: Mapping[str, Any], currency: str) -> list[str]:
    """The dry run's lines for people, one per class (`MediaEstimate.as_json`)."""
    lines = []
    for kind, row in media.items():
        measure = MEASURE[kind]
        low, high = row[measure]
        what = f"{low:,} {measure}" if low == high else f"{low:,} to {high:,} {measure}"
        what += " (exact)" if row["exact"] else " (a range: the durations or pages are unknown)"
        if "sound_minutes" in row:
            s_low, s_high = row["sound_minutes"]
            what += f", soundtrack {s_low:,} to {s_high:,} minutes"
        if row["price"] is not None:
            p_low, p_high = row["price"]
            what += f" = {p_low:,.2f}" + (f" to {p_high:,.2f}" if p_high != p_low else "")
            what += f" {currency}"
        lines.append(f"  {LABELS[kind]:<12} {row['objects']:>12,}   {what}")
    return lines
