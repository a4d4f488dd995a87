"""What is audited and how, whichever service answers: the audit options (`AuditOptions`,
built from the settings by `audit_options`), their fingerprints and when a stored verdict still
holds, and the rules for GIFs, large images and keys a request can carry. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from scanner.config import AuditSettings, FreezeSettings
from scanner.config.settings import VideoSettings
from scanner.media import IMAGE, class_of

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(value: str) -> bool:
    """Whether `value` can travel inside an XML 1.0 element."""
    return _NOT_XML.search(value) is None


#: Images larger than this need LargeImageDetect (billed compression) up to 32 MB (reference 3.2).
LARGE_IMAGE_BYTES = 5 * 1024 * 1024


def is_gif(key: str) -> bool:
    """Whether Interval/MaxFrames apply to `key` (they are GIF-only options)."""
    return key[-4:].lower() == ".gif"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditOptions:
    """What is sent besides the images: the policy and the per-input options.

    `detect_type` is canonical (the service's spelling and order, see `detect_scenes`).
    `policy_version` is never sent: the user bumps it after editing the BizType policy in the
    console, which the scanner cannot see, so that verdicts of the old policy stop counting.
    """

    biz_type: str = ""
    detect_type: str = ""
    interval: int = 0
    max_frames: int = 0
    large_image_detect: bool = False
    policy_version: str = ""
    freeze: tuple[tuple[str, int], ...] = ()  # (scene, score): auto-freeze; not a policy part
    service: str = "ci"  # which service audits: its verdicts are not the other's
    #: the job classes a scan audits besides images ([scan] media), and the video options
    jobs: frozenset[str] = frozenset()
    video: tuple[tuple[str, str], ...] = ()  # (name, value) of [video]'s snapshot options
    #: (gif, large) -> fingerprint_for of that class of objects (filled on first use)
    _classes: dict[tuple[bool, bool], str] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def _parts(self) -> dict[str, str]:
        service = {} if self.service == "ci" else {"service": self.service}
        return {
            **service,
            "biz_type": self.biz_type,
            "detect_type": self.detect_type,
            "policy_version": self.policy_version,
            "interval": str(self.interval),
            "max_frames": str(self.max_frames),
            "large_image_detect": str(int(self.large_image_detect)),
        }

    def fingerprint(self) -> str:
        """Every option, as one stable text (the scan's row shows it)."""
        return _join(self._parts())

    def fingerprint_for(self, key: str, size: int) -> str:
        """What decides whether a verdict of this object still stands: BizType, DetectType and
        the policy version for every image; Interval/MaxFrames only for GIFs; LargeImageDetect
        only for images over 5 MB. So toggling a GIF option re-audits GIFs, not the bucket.
        Four classes per options, each computed once: it is asked three times per object
        (admission, copies, the writer); an lru_cache keyed by the options hashed them on
        every call."""
        if self.jobs:
            kind = class_of(key)
            if kind is not None and kind != IMAGE:
                return self.job_fingerprint(kind)
        cls = (is_gif(key), size > LARGE_IMAGE_BYTES)
        found = self._classes.get(cls)
        if found is None:
            found = self._classes[cls] = _fingerprint_of_class(self, *cls)
        return found

    def job_fingerprint(self, kind: str) -> str:
        """A job class's: CI's policy (BizType, DetectType, version) and, for videos, the
        snapshot options and whether the soundtrack is moderated. The image service and the
        image-only options are not part of it (jobs are always CI's)."""
        parts = {"job": kind, "biz_type": self.biz_type, "detect_type": self.detect_type,
                 "policy_version": self.policy_version}  # fmt: skip
        if kind == "video":
            parts.update(self.video)
        return _join(parts)


def _fingerprint_of_class(options: AuditOptions, gif: bool, large: bool) -> str:
    """`fingerprint_for` of a class of objects."""
    parts = options._parts()
    if not gif:
        del parts["interval"], parts["max_frames"]
    if not large:
        del parts["large_image_detect"]
    return _join(parts)


def _join(parts: Mapping[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in parts.items())


#: What an older stored fingerprint lacks, it had at these values.
_PART_DEFAULTS = {"policy_version": "", "service": "ci"}


def policy_still_holds(stored: str, current: str) -> bool:
    """Whether a verdict recorded under fingerprint `stored` is valid under `current` (a
    `fingerprint_for` of the same object): every part `current` names must match. Older stores
    kept every option for every object; the parts that do not apply to the object are ignored,
    and DetectType is compared as a set of scenes (any case, any order)."""
    if stored == current:
        return True
    old = dict(p.partition("=")[::2] for p in stored.split(";") if p)
    for name, value in (p.partition("=")[::2] for p in current.split(";") if p):
        was = old.get(name, _PART_DEFAULTS.get(name))
        if name == "detect_type":
            if _scene_set(was or "") != _scene_set(value):
                return False
        elif was != value:
            return False
    return True


def _scene_set(value: str) -> frozenset[str]:
    return frozenset(p.strip().lower() for p in value.split(",") if p.strip())


def audit_options(
    settings: AuditSettings,
    freeze: FreezeSettings | None = None,
    media: tuple[str, ...] = (IMAGE,),
    video: VideoSettings | None = None,
) -> AuditOptions:
    v = video or VideoSettings()
    return AuditOptions(
        jobs=frozenset(media) - {IMAGE},
        video=(
            ("snapshot_mode", v.snapshot_mode),
            ("snapshot_count", str(v.snapshot_count)),
            ("snapshot_interval", f"{v.snapshot_interval:g}"),
            ("detect_content", str(int(v.detect_content))),
        ),
        freeze=tuple((freeze or FreezeSettings()).thresholds().items()),
        biz_type=settings.biz_type,
        detect_type=",".join(settings.scenes),
        policy_version=settings.policy_version,
        interval=settings.interval,
        max_frames=settings.max_frames,
        large_image_detect=settings.large_image_detect,
        service=settings.service,
    )
