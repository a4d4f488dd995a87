"""Raws: a verdict's answer as received (the JobsDetail XML), as the store keeps it: deflated
against a preset dictionary; older stores' text and plain-deflated blobs read the same."""

from __future__ import annotations

import zlib

#: What a CI answer's JobsDetail is mostly made of, for deflate to refer to (a preset
#: dictionary: RFC 1950's FDICT, here with raw deflate). Fixed for ever: blobs that start with
#: `_DICT_V1` were deflated with it. Rarer parts first, the commonest last (nearest).
_RAW_DICT = (
    b"<UserInfo><TokenId></TokenId></UserInfo><Url></Url><ObjectResults><Name></Name>"
    b"<Location><X>0</X><Y>0</Y><Width>0</Width><Height>0</Height><Rotate>0</Rotate></Location>"
    b"</ObjectResults><LibResults><ImageId></ImageId><Score>0</Score><LibType>0</LibType>"
    b"<LibName></LibName></LibResults><OcrResults><Text></Text><Keywords></Keywords>"
    b"</OcrResults><ListInfo><ListResults><ListType>1</ListType><ListName></ListName>"
    b"<Entity></Entity></ListResults></ListInfo><ForbidState>0</ForbidState>"
    b"<TeenagerInfo><Code>0</Code><Msg>OK</Msg><HitFlag>0</HitFlag><Score>0</Score>"
    b"<Label>Normal</Label><Category></Category><SubLabel></SubLabel></TeenagerInfo>"
    b"<AbuseInfo><Code>0</Code><Msg>OK</Msg><HitFlag>0</HitFlag><Score>0</Score>"
    b"<Label>Normal</Label><Category></Category><SubLabel></SubLabel></AbuseInfo>"
    b"<JobsDetail><Code>InternalError</Code><Message></Message><DataId></DataId><JobId>"
    b"</JobId><State>Failed</State><Object></Object></JobsDetail>"
    b"<JobsDetail><DataId>0</DataId><JobId>si0000000000000000000000000000000000</JobId>"
    b"<State>Success</State><Object>albums/</Object><Label>Porn</Label><Result>1</Result>"
    b"<Score>99</Score><Category>Porn</Category><SubLabel>SexBehavior</SubLabel><Text></Text>"
    b"<CompressionResult>0</CompressionResult><PornInfo><Code>0</Code><Msg>OK</Msg><HitFlag>1"
    b"</HitFlag><Score>99</Score><Label>Porn</Label><Category>Porn</Category><SubLabel>"
    b"SexBehavior</SubLabel></PornInfo><AdsInfo><Code>0</Code><Msg>OK</Msg><HitFlag>2</HitFlag>"
    b"<Score>75</Score><Label>Ads</Label><Category>QRCode</Category><SubLabel></SubLabel>"
    b"</AdsInfo></JobsDetail>"
    b"<JobsDetail><DataId>1</DataId><JobId>si0000000000000000000000000000000000</JobId>"
    b"<State>Success</State><Object>albums/</Object><Label>Normal</Label><Result>0</Result>"
    b"<Score>0</Score><Category></Category><SubLabel></SubLabel><Text></Text>"
    b"<CompressionResult>0</CompressionResult><PornInfo><Code>0</Code><Msg>OK</Msg><HitFlag>0"
    b"</HitFlag><Score>0</Score><Label>Normal</Label><Category></Category><SubLabel></SubLabel>"
    b"</PornInfo><TerrorismInfo><Code>0</Code><Msg>OK</Msg><HitFlag>0</HitFlag><Score>0</Score>"
    b"<Label>Normal</Label><Category></Category><SubLabel></SubLabel></TerrorismInfo>"
    b"<PoliticsInfo><Code>0</Code><Msg>OK</Msg><HitFlag>0</HitFlag><Score>0</Score>"
    b"<Label>Normal</Label><Category></Category><SubLabel></SubLabel></PoliticsInfo>"
    b"<AdsInfo><Code>0</Code><Msg>OK</Msg><HitFlag>0</HitFlag><Score>0</Score>"
    b"<Label>Normal</Label><Category></Category><SubLabel></SubLabel></AdsInfo>"
    b"<IllegalInfo><Code>0</Code><Msg>OK</Msg><HitFlag>0</HitFlag><Score>0</Score>"
    b"<Label>Normal</Label><Category></Category><SubLabel></SubLabel></IllegalInfo></JobsDetail>"
)
_DICT_V1 = b"\xd1"  # never the first byte of a zlib stream (0x78 with the window used before)
_WBITS = -12  # raw deflate, 4 KB window: the dictionary fits, and a copy of the state is cheap
#: Deflating ~1 KB took 13 us, most of it setting up zlib's state: a primed state is copied.
_PRIMED = zlib.compressobj(1, zlib.DEFLATED, _WBITS, 4, zlib.Z_DEFAULT_STRATEGY, _RAW_DICT)


def pack_raw(raw: str) -> bytes | str:
    """A verdict's JobsDetail XML as stored: deflated against `_RAW_DICT` (about a tenth of
    its size; without the dictionary a third).

    Kept as text, the ~1 KB answers of a 100,000-image scan made a 460 MB store; deflated
    alone, 30 MB of the store's 88 MB; against the dictionary about 10 MB, in half the CPU.
    """
    if not raw:
        return ""
    packer = _PRIMED.copy()
    return _DICT_V1 + packer.compress(raw.encode()) + packer.flush()


def unpack_raw(value: bytes | str | None) -> str | None:
    """A stored raw verdict as XML text (older stores hold it as text, or deflated without the
    dictionary: every form reads)."""
    if isinstance(value, bytes):
        try:
            if value[:1] == _DICT_V1:
                unpacker = zlib.decompressobj(_WBITS, _RAW_DICT)
                return (unpacker.decompress(value[1:]) + unpacker.flush()).decode()
            return zlib.decompress(value).decode()
        except (zlib.error, UnicodeDecodeError):  # damaged: let the reader see it is not XML
            return value.decode(errors="replace")
    return value
