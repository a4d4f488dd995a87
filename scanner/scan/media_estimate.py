"""The dry run's estimate for videos, voice notes and documents (reference 12.6): frames per
video (at most `[video] snapshot_count`), minutes of sound (voice notes; a video's soundtrack
with `detect_content`), pages per document, and their units and price. A listing gives sizes,
not durations or pages: each figure is a range from the size (`scanner.media`), exact for an
object whose bytes an earlier job already measured (the store's `known_units`). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanner.audit.policy import AuditOptions
from scanner.config import Config
from scanner.jobspend import MEASURE
from scanner.media import frame_count, pages_range, seconds_range
from scanner.models import ObjectRef
from scanner.store.jobs import Known


@dataclass
class ClassEstimate:
    objects: int = 0
    low: float = 0.0  # frames, minutes or pages: the least
    high: float = 0.0  # and the most
    exact: int = 0  # objects whose figure is known exactly
    sound_low: float = 0.0  # a video's soundtrack, minutes (with detect_content)
    sound_high: float = 0.0

    def add(self, low: float, high: float, known: bool) -> None:
        self.objects += 1
        self.low += low
        self.high += high
        self.exact += known


@dataclass
class MediaEstimate:
    options: AuditOptions
    classes: dict[str, ClassEstimate] = field(default_factory=dict)

    def add(self, kind: str, ref: ObjectRef, known: Known | None) -> None:
        est = self.classes.setdefault(kind, ClassEstimate())
        if kind == "document":
            pages = known.pages if known is not None and known.pages else None
            est.add(*((pages, pages) if pages else pages_range(ref.size)), pages is not None)
            return
        sure = known.seconds if known is not None and known.seconds else None
        lo, hi = (sure, sure) if sure else seconds_range(kind, ref.size)
        if kind == "audio":
            est.add(lo / 60, hi / 60, sure is not None)
            return
        v = dict(self.options.video)
        mode, count, every = (
            v["snapshot_mode"],
            int(v["snapshot_count"]),
            float(v["snapshot_interval"]),
        )
        frames = None if known is None else known.frames.get(self.options.job_fingerprint(kind))
        if frames is not None:
            est.add(frames, frames, True)
        else:
            f_lo, f_hi = frame_count(lo, mode, count, every), frame_count(hi, mode, count, every)
            est.add(f_lo, f_hi, sure is not None or f_lo == f_hi)
        if v["detect_content"] == "1":
            est.sound_low += lo / 60
            est.sound_high += hi / 60

    def as_json(self, config: Config) -> dict[str, Any]:
        scenes = config.audit.scenes_per_image
        sound_price = config.audio.unit_price
        out: dict[str, Any] = {}
        for kind, est in sorted(self.classes.items()):
            measure = MEASURE[kind]
            low, high = _round(est.low), _round(est.high)
            row: dict[str, Any] = {"objects": est.objects, measure: [low, high],
                                   "exact": est.exact == est.objects}  # fmt: skip
            units: list[float] | None = [low, high]
            price = {"video": config.video.unit_price, "audio": sound_price,
                     "document": config.document.unit_price}[kind]  # fmt: skip
            if kind != "audio":
                units = None if scenes is None else [low * scenes, high * scenes]
            row["billed_units"] = None if kind == "audio" else units
            money = None if units is None or not price else [u * price for u in units]
            if kind == "video" and est.sound_high:
                sound = [_round(est.sound_low), _round(est.sound_high)]
                row["sound_minutes"] = sound
                if money is not None:
                    money = None if not sound_price else [
                        m + s * sound_price for m, s in zip(money, sound, strict=True)
                    ]  # fmt: skip
            row["price"] = None if money is None else [round(m, 6) for m in money]
            out[kind] = row
        return out


def _round(value: float) -> float:
    return int(value) if float(value).is_integer() else round(value, 2)
