"""What class of media a key names, by its extension (any case): the formats CI moderates
(reference 3.2 for images, 12.6 for the job types). Leaf module: imports nothing from
`scanner`.

Images are audited in batches; videos, voice and documents are CI moderation jobs, which the
scanner does not submit yet: a scan skips them with a reason naming their class
(`video-not-enabled`, ...), so the dry run and the summary say how many there are.
"""

from __future__ import annotations

IMAGE = "image"
#: Formats batch image auditing reads (reference 3.2).
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "bmp", "gif", "webp", "heif", "heic"})
#: Formats of the job types (reference 12.6); a `3gp` is a video.
MEDIA_EXTENSIONS: dict[str, frozenset[str]] = {
    "video": frozenset("flv mkv mp4 rmvb avi wmv 3gp mov m3u8 m4v".split()),
    "audio": frozenset("mp3 wav aac flac amr m4a wma ogg ape".split()),
    "document": frozenset(
        "ppt pptx pot potx pps ppsx dps dpt pptm potm ppsm doc dot wps wpt docx dotx docm dotm "
        "xls xlt et ett xlsx xltx csv xlsb xlsm xltm ets pdf".split()
    ),
}


def extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[1].lower() if "." in name else ""


def class_of(key: str) -> str | None:
    """image, video, audio or document; None for a format none of them reads."""
    ext = extension(key)
    if ext in IMAGE_EXTENSIONS:
        return IMAGE
    return next((c for c, exts in MEDIA_EXTENSIONS.items() if ext in exts), None)
