"""Safe XML: DTDs and absurd nesting refused at parse; to_dict without recursion."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from scanner.cos.xml import MAX_DEPTH, XmlError, error_fields, parse, parse_cold, to_dict


def test_nesting_past_the_limit_is_refused() -> None:
    ok = b"<a>" * MAX_DEPTH + b"x" + b"</a>" * MAX_DEPTH
    assert parse(ok).tag == "a"
    deep = b"<a>" * 200_000 + b"</a>" * 200_000  # 1.4 MB, under the size cap
    with pytest.raises(XmlError, match="nested deeper than 32 levels"):
        parse(deep)


@pytest.mark.parametrize("parser", [parse, parse_cold])
@pytest.mark.parametrize(("depth", "refused"), [(MAX_DEPTH, False), (MAX_DEPTH + 1, True)])
def test_the_depth_counts_one_deep_branch_among_leaves(
    parser: Callable[[bytes], object], depth: int, refused: bool
) -> None:
    """The walk carries only elements that have children to the next level: a deep branch
    beside many leaves (and below leaves' siblings) is measured all the same."""
    branch = b"<b>" * (depth - 2) + b"<c/>" + b"</b>" * (depth - 2)  # depth - 1 levels
    body = b"<r>" + b"<leaf/>" * 50 + b"<x><leaf/></x>" + branch + b"<leaf/>" + b"</r>"
    if refused:
        with pytest.raises(XmlError, match="nested deeper"):
            parser(body)
    else:
        parser(body)


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


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<Error><Code>&lol3;</Code></Error>"
)
EXTERNAL = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL])
def test_entities_are_refused_on_both_paths(body: bytes) -> None:
    with pytest.raises(XmlError, match="DTD"):
        parse(body)
    with pytest.raises(XmlError, match="refused or malformed"):
        parse_cold(body)
    assert error_fields(body) == {}  # an error answer with a DTD is not read at all


def test_cold_path_reads_what_the_hot_path_reads() -> None:
    body = b"<Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>r</RequestId></Error>"
    assert to_dict(parse_cold(body)) == to_dict(parse(body))
    assert error_fields(body)["Code"] == "NoSuchKey"
