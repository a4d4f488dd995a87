"""Safe XML parsing for answers from COS and CI, shared by the listing and audit codecs.

A hostile or broken endpoint must not blow up memory: documents with a DTD (the only place
entities can be declared, so no entity expansion and no external entity) are refused, and so
is nesting deeper than `MAX_DEPTH`. Sizes are capped by the transport.

Two ways, one guarantee. `parse_cold` goes through `defusedxml` (DTDs, entities and external
references forbidden by the parser itself), for answers read a few at a time: errors, ACLs,
copies, stored verdicts at export. The hot path (listing pages, audit answers: every object
passes through it) keeps CPython's C parser behind a byte check that refuses any DOCTYPE or
ENTITY declaration before parsing, with the parser forced to UTF-8 so a UTF-16 body cannot hide
one: defusedxml's parser is the pure-Python one (it hooks the DTD handlers) and took 13.3 ms
for a 100-image answer against 2.4 ms, which would more than double the scan's CPU per object.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import chain
from typing import Any

import defusedxml.ElementTree as defused
from defusedxml import DefusedXmlException


class XmlError(ValueError):
    """The body is not acceptable XML."""


#: Deeper than any answer of these APIs (a listing is 3 levels, an audit answer 6).
MAX_DEPTH = 32

#: An element of a parsed answer. (lxml was tried for the hot path: its parse is twice as
#: fast, but its find() is Python and it makes an object per element visited; with one pass
#: over the children, a scan was ~5 % cheaper for 5 MB more memory and one more dependency.)
Node = ET.Element


def parse(body: bytes) -> Node:
    """Parse `body` into an Element tree, refusing DTDs, entity declarations and absurd nesting
    (200,000 nested elements fit in 1.4 MB and break every recursive reader later)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise XmlError("refused XML with a DTD/entity declarations")
    parser = ET.XMLParser(encoding="utf-8")
    try:
        parser.feed(body)
        root = parser.close()
    except ET.ParseError as exc:
        raise XmlError(f"malformed XML: {exc}") from None
    _check_depth(root)
    return root


def parse_cold(body: bytes) -> ET.Element:
    """`parse` for answers off the hot path, through defusedxml (see the module docstring)."""
    try:
        root: ET.Element = defused.fromstring(body, forbid_dtd=True)
    except (DefusedXmlException, ET.ParseError) as exc:
        raise XmlError(f"refused or malformed XML: {exc}") from None
    _check_depth(root)
    return root


def _check_depth(root: ET.Element) -> None:
    """Level by level (no recursion). Only elements that have children go on to the next
    level, and each level is gathered and filtered in C (`chain`, `filter(len, ...)`): most
    elements are leaves, so the walk touches each element once and keeps few of them."""
    level = [root] if len(root) else []  # elements at `depth` that have children
    depth = 1
    while level:
        depth += 1  # their children are at this depth
        if depth > MAX_DEPTH:
            raise XmlError(f"refused XML nested deeper than {MAX_DEPTH} levels")
        level = list(filter(len, chain.from_iterable(level)))


def tostring(elem: Node) -> str:
    """An element of `parse` as XML text."""
    return ET.tostring(elem, encoding="unicode")


def text(elem: Node, tag: str, default: str = "") -> str:
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
    """An element as plain JSON-able data: text leaves become strings, repeats become lists.

    Without recursion (a stored answer from before nesting was refused may be deep)."""
    if len(elem) == 0:
        return elem.text or ""
    top: dict[str, Any] = {}
    stack: list[tuple[ET.Element, dict[str, Any]]] = [(elem, top)]
    while stack:
        node, out = stack.pop()
        for child in node:
            value: Any = {} if len(child) else (child.text or "")
            if len(child):
                stack.append((child, value))
            if child.tag in out:
                prev = out[child.tag]
                if isinstance(prev, list):
                    prev.append(value)
                else:
                    out[child.tag] = [prev, value]
            else:
                out[child.tag] = value
    return top


def error_fields(body: bytes) -> dict[str, str]:
    """Code/Message/RequestId of an error body; empty when it is not error XML."""
    try:
        root = parse_cold(body)
    except XmlError:
        return {}
    if root.tag != "Error":
        return {}
    return {tag: text(root, tag) for tag in ("Code", "Message", "RequestId", "Resource")}
