"""Safe XML parsing for answers from COS and CI, shared by the listing and audit codecs.

A hostile or broken endpoint must not blow up memory: documents with a DTD (the only place
entities can be declared) are refused before parsing, and the parser is forced to UTF-8 so a
UTF-16 body cannot hide a DOCTYPE from that check. Sizes are capped by the transport.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


class XmlError(ValueError):
    """The body is not acceptable XML."""


def parse(body: bytes) -> ET.Element:
    """Parse `body` into an Element tree, refusing DTDs and entity declarations."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise XmlError("refused XML with a DTD/entity declarations")
    parser = ET.XMLParser(encoding="utf-8")
    try:
        parser.feed(body)
        return parser.close()
    except ET.ParseError as exc:
        raise XmlError(f"malformed XML: {exc}") from None


def text(elem: ET.Element, tag: str, default: str = "") -> str:
    """The text of child `tag`, or `default` when absent or empty."""
    child = elem.find(tag)
    if child is None or child.text is None:
        return default
    return child.text


def to_int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return default


def to_dict(elem: ET.Element) -> Any:
    """An element as plain JSON-able data: text leaves become strings, repeats become lists."""
    if len(elem) == 0:
        return elem.text or ""
    out: dict[str, Any] = {}
    for child in elem:
        value = to_dict(child)
        if child.tag in out:
            prev = out[child.tag]
            if isinstance(prev, list):
                prev.append(value)
            else:
                out[child.tag] = [prev, value]
        else:
            out[child.tag] = value
    return out


def error_fields(body: bytes) -> dict[str, str]:
    """Code/Message/RequestId of an error body; empty when it is not error XML."""
    try:
        root = parse(body)
    except XmlError:
        return {}
    if root.tag != "Error":
        return {}
    return {tag: text(root, tag) for tag in ("Code", "Message", "RequestId", "Resource")}
