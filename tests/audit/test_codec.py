"""encode_batch / decode_results: pure, no I/O."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from scanner.audit.codec import decode_results, encode_batch
from scanner.audit.policy import AuditOptions, xml_safe
from scanner.audit.raw import raw_to_dict
from scanner.cos.xml import XmlError
from scanner.models import AuditItem, Result

ITEMS = [AuditItem("a.jpg", "0"), AuditItem("相册/b c&<d>.png", "1"), AuditItem("cr\rlf.gif", "2")]


def test_encode_round_trips_keys_and_options() -> None:
    body = encode_batch(
        ITEMS,
        AuditOptions(
            biz_type="b81d",
            detect_type="Porn,Ads",
            interval=3,
            max_frames=7,
            large_image_detect=True,
        ),
    )
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(body)
    inputs = root.findall("Input")
    assert [i.findtext("Object") for i in inputs] == [i.key for i in ITEMS]
    assert [i.findtext("DataId") for i in inputs] == ["0", "1", "2"]
    assert inputs[0].findtext("Interval") == "3"
    assert inputs[0].findtext("MaxFrames") == "7"
    assert inputs[0].findtext("LargeImageDetect") == "1"
    assert root.findtext("Conf/BizType") == "b81d"
    assert root.findtext("Conf/DetectType") == "Porn,Ads"
    assert root.findtext("Conf/Async") == "0"


def test_encode_omits_unset_options() -> None:
    root = ET.fromstring(encode_batch(ITEMS[:1], AuditOptions()))
    assert root.find("Input/Interval") is None
    assert root.find("Conf/BizType") is None
    assert root.find("Conf/DetectType") is None


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([], "1..100"),
        ([AuditItem(f"{i}", str(i)) for i in range(101)], "1..100"),
        ([AuditItem("a", "x"), AuditItem("b", "x")], "unique"),
        ([AuditItem("a", "x" * 513)], "512 bytes"),
        ([AuditItem("bell\x07.jpg", "0")], "XML cannot carry"),
    ],
)
def test_encode_refuses(items: list[AuditItem], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_batch(items, AuditOptions())


def test_xml_safe() -> None:
    assert xml_safe("a\tb\nc\rd 相册")
    assert not xml_safe("a\x00b")
    assert not xml_safe("a\x1fb")


def test_fingerprint_changes_with_every_option() -> None:
    base = AuditOptions()
    variants = [
        AuditOptions(biz_type="x"),
        AuditOptions(detect_type="Porn"),
        AuditOptions(interval=2),
        AuditOptions(max_frames=3),
        AuditOptions(large_image_detect=True),
    ]
    prints = {base.fingerprint(), *(v.fingerprint() for v in variants)}
    assert len(prints) == 6


ANSWER = """<Response>
<JobsDetail><DataId>2</DataId><JobId>j2</JobId><State>Success</State><Object>cr\rlf.gif</Object>
 <Label>Ads</Label><Result>2</Result><Score>75</Score><Category>Ads</Category>
 <SubLabel>QRCode</SubLabel><Text>加微信</Text><CompressionResult>0</CompressionResult>
 <AdsInfo><Code>0</Code><Msg>OK</Msg><HitFlag>2</HitFlag><Score>75</Score><Label>Ads</Label>
  <SubLabel>QRCode</SubLabel>
  <OcrResults><Text>加微信</Text><Keywords>加</Keywords><Keywords>微信</Keywords>
   <Location><X>1</X></Location></OcrResults>
  <LibResults><ImageId>i1</ImageId><Score>88</Score><LibType>1</LibType><LibName>n</LibName>
  </LibResults></AdsInfo>
 <PornInfo></PornInfo>
 <ListInfo><ListResults><ListType>1</ListType><ListName>bl</ListName><Entity>e</Entity>
 </ListResults></ListInfo></JobsDetail>
<JobsDetail><Code>InvalidArgument</Code><Message>Param MaxFrames is illegal</Message>
 <DataId></DataId><Object>相册/b c&amp;&lt;d&gt;.png</Object></JobsDetail>
<JobsDetail><DataId>0</DataId><JobId>j0</JobId><State>Success</State><Label>Porn</Label>
 <Result>1</Result><Score>95</Score>
 <PornInfo><Code>0</Code><HitFlag>1</HitFlag><Score>95</Score><Label>Porn</Label></PornInfo>
</JobsDetail>
<RequestId>r</RequestId></Response>""".encode()


def test_decode_matches_by_data_id_not_position() -> None:
    a, b, c = decode_results(ANSWER, ITEMS)
    assert (a.key, a.result, a.label, a.score, a.job_id) == (
        "a.jpg",
        Result.SENSITIVE,
        "Porn",
        95,
        "j0",
    )
    assert a.scenes["PornInfo"].hit_flag == 1
    assert (c.key, c.result, c.category, c.sub_label, c.text) == (
        "cr\rlf.gif",
        Result.SUSPICIOUS,
        "Ads",
        "QRCode",
        "加微信",
    )
    ads = c.scenes["AdsInfo"]
    assert ads.ocr_results[0].keywords == ("加", "微信")
    assert ads.lib_results[0].score == 88
    assert c.scenes["PornInfo"].hit_flag == 0
    assert c.list_results[0].list_name == "bl"
    assert raw_to_dict(c.raw)["AdsInfo"]["OcrResults"][0]["Keywords"] == ["加", "微信"]
    assert c.raw.startswith("<JobsDetail><DataId>2</DataId>")
    assert c.compression_result == 0
    # a per-image failure with an empty DataId is matched by its Object
    assert (b.code, b.message, b.failed, b.retryable) == (
        "InvalidArgument",
        "Param MaxFrames is illegal",
        True,
        False,
    )


def test_missing_results_become_retryable_failures() -> None:
    body = b"<Response><JobsDetail><DataId>zzz</DataId><Result>0</Result></JobsDetail></Response>"
    results = decode_results(body, ITEMS)
    assert [r.code for r in results] == ["NoResult"] * 3
    assert all(r.retryable for r in results)


def test_a_failed_scene_keeps_the_verdict_unless_there_is_none() -> None:
    # before: one scene's Code threw the image's verdict away (and it was billed again)
    scene = b"<PornInfo><Code>-65010</Code><Msg>download failed</Msg></PornInfo>"
    kept = b"<Response><JobsDetail><DataId>0</DataId><Result>1</Result><Label>Ads</Label>"
    (r,) = decode_results(kept + scene + b"</JobsDetail></Response>", ITEMS[:1])
    assert not r.failed
    assert (r.result, r.label) == (Result.SENSITIVE, "Ads")
    assert "<Code>-65010</Code>" in r.raw  # the failed scene is kept with the verdict
    none = b"<Response><JobsDetail><DataId>0</DataId>" + scene + b"</JobsDetail></Response>"
    (r,) = decode_results(none, ITEMS[:1])
    assert (r.code, r.retryable) == ("-65010", True)  # no verdict: the scene says why
    assert "download failed" in r.message


def test_export_keeps_the_api_types() -> None:
    raw = (
        "<JobsDetail><Result>1</Result><Score>95</Score><PornInfo><HitFlag>1</HitFlag>"
        "<OcrResults><Text>t</Text><Keywords>only</Keywords><Location><X>1.5</X></Location>"
        "</OcrResults></PornInfo><ListInfo><ListResults><ListType>1</ListType></ListResults>"
        "</ListInfo><Label>Porn</Label></JobsDetail>"
    )
    data = raw_to_dict(raw)
    assert (data["Result"], data["Score"], data["Label"]) == (1, 95, "Porn")
    ocr = data["PornInfo"]["OcrResults"]
    assert ocr == [{"Text": "t", "Keywords": ["only"], "Location": {"X": 1.5}}]
    assert data["ListInfo"]["ListResults"] == [{"ListType": 1}]


def test_invalid_result_is_a_retryable_failure() -> None:
    body = b"<Response><JobsDetail><DataId>0</DataId><Result>7</Result></JobsDetail></Response>"
    (r,) = decode_results(body, ITEMS[:1])
    assert r.code == "NoVerdict"


def test_decode_refuses_non_response() -> None:
    with pytest.raises(ValueError, match="Response"):
        decode_results(b"<Error><Code>x</Code></Error>", ITEMS)
    with pytest.raises(XmlError):
        decode_results(b"<Response><JobsDetail>", ITEMS)


def test_raw_falls_back_to_serialising_when_elements_are_unusual() -> None:
    body = (
        b'<Response><JobsDetail a="1"><DataId>0</DataId><Result>1</Result><Label>Porn'
        b"</Label><PornInfo><Code>0</Code><HitFlag>1</HitFlag></PornInfo></JobsDetail>"
        b"</Response>"
    )
    (r,) = decode_results(body, ITEMS[:1])
    assert r.result == Result.SENSITIVE
    assert raw_to_dict(r.raw)["Label"] == "Porn"
    assert r.scenes["PornInfo"].hit_flag == 1
    assert list(r.scenes) == ["PornInfo"]


def test_freeze_is_sent_in_conf_and_forbid_state_read() -> None:
    body = encode_batch([AuditItem("a.jpg", "0")], AuditOptions(freeze=(("Porn", 90), ("Ads", 80))))
    assert b"<Freeze><PornScore>90</PornScore><AdsScore>80</AdsScore></Freeze></Conf>" in body
    assert b"<Freeze>" not in encode_batch([AuditItem("a.jpg", "0")], AuditOptions())
    answer = (
        b"<Response><JobsDetail><DataId>0</DataId><JobId>j</JobId><State>Success</State>"
        b"<Object>a.jpg</Object><Label>Porn</Label><Result>1</Result><Score>95</Score>"
        b"<ForbidState>1</ForbidState></JobsDetail><RequestId>r</RequestId></Response>"
    )
    (v,) = decode_results(answer, [AuditItem("a.jpg", "0")])
    assert v.forbid_state == 1
    (plain,) = decode_results(answer.replace(b"<ForbidState>1</ForbidState>", b""),
                              [AuditItem("a.jpg", "0")])  # fmt: skip
    assert plain.forbid_state is None
