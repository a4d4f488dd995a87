"""Safe XML: DTDs and absurd nesting refused at parse; to_dict without recursion."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from scanner.cos.xml import MAX_DEPTH, XmlError, parse, to_dict


def test_nesting_past_the_limit_is_refused() -> None:
    ok = b"<a>" * MAX_DEPTH + b"x" + b"</a>" * MAX_DEPTH
    assert parse(ok).tag == "a"
    deep = b"<a>" * 200_000 + b"</a>" * 200_000  # 1.4 MB, under the size cap
    with pytest.raises(XmlError, match="nested deeper than 32 levels"):
        parse(deep)


def test_to_dict_keeps_repeats_order_and_survives_depth() -> None:
    root = parse(b"<r><b>1</b><b>2</b><c><d>x</d><d><e>y</e></d></c><f/></r>")
    assert to_dict(root) == {"b": ["1", "2"], "c": {"d": ["x", {"e": "y"}]}, "f": ""}
    # a raw stored before nesting was refused: exported, not a RecursionError
    top = node = ET.Element("JobsDetail")
    for _ in range(200_000):
        node = ET.SubElement(node, "X")
    node.text = "deep"
    out = to_dict(top)
    for _ in range(199_999):
        out = out["X"]
    assert out == {"X": "deep"}
