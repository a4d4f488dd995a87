"""Stored answers for display: a CI JobsDetail (XML) or an IMS Response (JSON) as JSON-able
data with the API's types, for reports, `check` and the review page. Pure: no I/O."""

from __future__ import annotations

import json
import re
from typing import Any

from scanner.cos.xml import parse_cold, to_dict

#: Elements the API repeats: always lists, even with one element.
LIST_TAGS = frozenset(
    {"OcrResults", "LibResults", "ObjectResults", "Keywords", "ListResults", "JobsDetail"}
)
#: Elements the API documents as integers.
INT_TAGS = frozenset(
    {"Result", "Score", "HitFlag", "Code", "CompressionResult", "ForbidState", "ListType",
     "Count"}
)  # fmt: skip
#: Elements the API documents as numbers (OCR and object locations).
FLOAT_TAGS = frozenset({"X", "Y", "Width", "Height", "Rotate"})


def _typed(tag: str, value: Any) -> Any:
    if isinstance(value, str):
        if tag in INT_TAGS and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        if tag in FLOAT_TAGS:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def typed(data: Any) -> Any:
    """`to_dict` data with the API's types: integers and numbers as such, repeated elements
    as lists even with one element (without recursion)."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for tag, value in node.items():
            if tag in LIST_TAGS and not isinstance(value, list):
                value = [value]
            if isinstance(value, list):
                value = [_typed(tag, v) for v in value]
            else:
                value = _typed(tag, value)
            node[tag] = value
            stack.append(value)
    return data


def raw_to_dict(raw: str) -> dict[str, Any]:
    """A stored raw answer as JSON-able data with the API's types, for reports: a JobsDetail
    (XML, CI) or an IMS Response (JSON, kept as the service sent it)."""
    if not raw:
        return {}
    if raw.lstrip().startswith("{"):
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"stored answer is not JSON: {exc}") from exc
        return loaded if isinstance(loaded, dict) else {}
    data = typed(to_dict(parse_cold(raw.encode())))
    return data if isinstance(data, dict) else {}
