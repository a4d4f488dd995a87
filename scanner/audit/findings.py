"""The flagged frames, sound sections and pages of a moderation job's stored answer (reference
12.5): what `report --frames` lists and the review page shows. Pure: no I/O.

A video's `Snapshot`s (`SnapshotTime`, ms) and soundtrack `AudioSection`s, a voice note's
`Section`s (`OffsetTime`, `Duration`, ms), a document's `PageSegment/Results` (`PageNumber`,
`SheetNumber`; `Suggestion` for Result). One is flagged when its Result (Suggestion) is 1 or 2,
or a scene's HitFlag is. Every repeated element is read as a list (the answer may hold one).
The `Url`s of frames and pages are valid for two hours after the query that gave them.
"""

from __future__ import annotations

from typing import Any

from scanner.cos.xml import Node, XmlError, parse_cold, to_int

#: (element path, what it is) in a JobsDetail.
PARTS = (
    ("Snapshot", "frame"),
    ("AudioSection", "section"),
    ("Section", "section"),
    ("PageSegment/Results", "page"),
)
FIELDS = ("kind", "offset_ms", "duration_ms", "page", "result", "label", "sub_label", "score",
          "text", "keywords", "url")  # fmt: skip


def _scenes(elem: Node) -> list[Node]:
    return [child for child in elem if child.tag.endswith("Info")]


def _finding(elem: Node, kind: str) -> dict[str, Any] | None:
    scenes = _scenes(elem)
    result = to_int(elem.findtext("Result") or elem.findtext("Suggestion") or "0")
    hits = [s for s in scenes if to_int(s.findtext("HitFlag") or "0") > 0]
    if result <= 0 and not hits:
        return None
    top = max(hits or scenes, key=lambda s: to_int(s.findtext("Score") or "0"), default=None)
    label = elem.findtext("Label") or (top.tag.removesuffix("Info") if top is not None else "")
    sub = elem.findtext("SubLabel") or (top.findtext("SubLabel") if top is not None else "") or ""
    words = [k.text or "" for s in scenes for k in s.iter("Keywords") if k.text]
    ocr = [o.findtext("Text") or "" for s in scenes for o in s.iterfind("OcrResults")]
    text = elem.findtext("Text") or " ".join(t for t in ocr if t)
    offset = elem.findtext("SnapshotTime") or elem.findtext("OffsetTime")
    duration = elem.findtext("Duration")
    page = elem.findtext("PageNumber")
    return {
        "kind": kind,
        "offset_ms": to_int(offset) if offset else None,
        "duration_ms": to_int(duration) if duration else None,
        "page": to_int(page) if page else None,
        "result": result if result > 0 else (2 if any(
            to_int(s.findtext("HitFlag") or "0") == 2 for s in hits) else 1),
        "label": label,
        "sub_label": sub,
        "score": to_int(top.findtext("Score") or "0") if top is not None else 0,
        "text": text,
        "keywords": list(dict.fromkeys(words)),
        "url": elem.findtext("Url") or "",
    }  # fmt: skip


def findings(raw: str) -> list[dict[str, Any]]:
    """The flagged frames, sections and pages of a stored JobsDetail (none for an answer
    that is not one: an image's, an IMS JSON answer)."""
    if not raw.lstrip().startswith("<"):
        return []
    try:
        jd = parse_cold(raw.encode())
    except (XmlError, ValueError):
        return []
    out = []
    for path, kind in PARTS:
        for elem in jd.iterfind(path):
            found = _finding(elem, kind)
            if found is not None:
                out.append(found)
    return out


def spoken(raw: str) -> str:
    """A voice note's whole text (`AudioText`), "" when there is none."""
    if not raw.lstrip().startswith("<"):
        return ""
    try:
        return parse_cold(raw.encode()).findtext("AudioText") or ""
    except (XmlError, ValueError):
        return ""
