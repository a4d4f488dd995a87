"""The emulator's verdict rules: deterministic, so tests and the demo know every answer.

For an image audited by Object (first match wins):

| condition                                                     | answer                     |
|---------------------------------------------------------------|----------------------------|
| the key is not in the bucket                                  | failure -61011 (not found) |
| extension not jpg/jpeg/png/bmp/gif/webp/heif/heic (any case)  | failure -65013 (format)    |
| size 0, or "corrupt" in the key                               | failure -65007 (decode)    |
| size >= 32 MB                                                 | failure -65011 (too large) |
| size > 5 MB without LargeImageDetect=1                        | failure -65011 (too large) |
| "nsfw" in the key, or bucket h < 20                           | Porn, Result 1, Score 95   |
| "ad_" in the key, or h in [20, 50)                            | Ads, Result 2, Score 75    |
| h in [50, 55)                                                 | Illegal, Result 1, Score 92|
| otherwise                                                     | Normal, Result 0, Score h % 30 |

where h = int(sha256(key)[:8], 16) % 1000 (in folder mode: sha256 of the file's first 64 KiB
and its size, so a verdict follows the content). A synthetic copy is judged as the picture it
copies (its key stands in for `key` in the rules above, but the copy's own extension), so
equal bytes get equal verdicts. A hit counts only if its scene was asked
for (DetectType, or the default scenes Porn, Terrorism, Politics, Ads, Illegal); otherwise the
image is Normal. A verdict is billed one unit per scene; failures are not billed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from scanner.emulator.bucket import MB, StoredObject

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "bmp", "gif", "webp", "heif", "heic"})
DEFAULT_SCENES = ("Porn", "Terrorism", "Politics", "Ads", "Illegal")
ALL_SCENES = ("Porn", "Terrorism", "Politics", "Ads", "Illegal", "Abuse", "Teenager")
SMALL_LIMIT = 5 * MB
HARD_LIMIT = 32 * MB


@dataclass(frozen=True, slots=True)
class Hit:
    scene: str
    result: int
    score: int
    sub_label: str = ""
    ocr_text: str = ""
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the emulator answers for one image: a failure code, or a result."""

    code: str = ""
    message: str = ""
    result: int = 0
    label: str = "Normal"
    score: int = 0
    sub_label: str = ""
    compressed: bool = False
    hits: tuple[Hit, ...] = field(default=())


def bucket_of(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 1000


def content_bucket(path: Path, size: int) -> int:
    with path.open("rb") as fh:
        head = fh.read(64 * 1024)
    digest = hashlib.sha256(head + str(size).encode()).hexdigest()
    return int(digest[:8], 16) % 1000


def _hit(key: str, h: int, scenes: tuple[str, ...]) -> Hit | None:
    low = key.lower()
    if "nsfw" in low or h < 20:
        hit = Hit("Porn", 1, 95, "SexBehavior")
    elif "ad_" in low or 20 <= h < 50:
        hit = Hit("Ads", 2, 75, "QRCode", "加微信 领红包", ("加微信", "领红包"))
    elif 50 <= h < 55:
        hit = Hit("Illegal", 1, 92, "Gamble")
    else:
        return None
    return hit if hit.scene in scenes else None


def verdict_for(
    key: str,
    obj: StoredObject | None,
    *,
    scenes: tuple[str, ...] = DEFAULT_SCENES,
    large_image_detect: bool = False,
) -> Verdict:
    """The answer for auditing object `key` (see the module docstring for the rules)."""
    if obj is None:
        return Verdict(code="-61011", message="file not found")
    ext = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if ext not in IMAGE_EXTENSIONS:
        return Verdict(code="-65013", message="file does not meet requirements (format)")
    seed = obj.content or key  # a copy is judged as what it copies
    if obj.size == 0 or "corrupt" in seed.lower():
        return Verdict(code="-65007", message="image decode failed")
    if obj.size >= HARD_LIMIT or (obj.size > SMALL_LIMIT and not large_image_detect):
        return Verdict(code="-65011", message="file too large")
    h = content_bucket(obj.path, obj.size) if obj.path is not None else bucket_of(seed)
    compressed = obj.size > SMALL_LIMIT
    hit = _hit(seed, h, scenes)
    if hit is None:
        return Verdict(score=h % 30, compressed=compressed)
    return Verdict(
        result=hit.result,
        label=hit.scene,
        score=hit.score,
        sub_label=hit.sub_label,
        compressed=compressed,
        hits=(hit,),
    )
