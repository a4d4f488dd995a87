"""Object-operation answers as other implementations may send them (namespaces, extra grants)."""

from __future__ import annotations

import pytest

from scanner.cos.objects import canned_acl
from scanner.cos.xml import XmlError

OWNER = (
    '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:type="CanonicalUser"><ID>qcs::cam::uin/1:uin/1</ID></Grantee>'
    "<Permission>FULL_CONTROL</Permission></Grant>"
)
PUBLIC = (
    '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
    "<URI>http://cam.qcloud.com/groups/global/AllUsers</URI></Grantee>"
    "<Permission>READ</Permission></Grant>"
)


@pytest.mark.parametrize(
    ("root", "grants", "expected"),
    [
        ("<AccessControlPolicy>", OWNER, "default"),
        ("<AccessControlPolicy>", OWNER + PUBLIC, "public-read"),
        ('<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">', OWNER, "default"),
        ('<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">', PUBLIC,
         "public-read"),
    ],
)  # fmt: skip
def test_canned_acl(root: str, grants: str, expected: str) -> None:
    body = (
        f"{root}<Owner><ID>o</ID></Owner><AccessControlList>{grants}</AccessControlList>"
        "</AccessControlPolicy>"
    )
    assert canned_acl(body.encode()) == expected


def test_unreadable_acl_is_an_error() -> None:
    with pytest.raises(XmlError):
        canned_acl(b"<html>")
