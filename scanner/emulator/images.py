"""Real, decodable images for the emulator's synthetic objects: PNG, JPEG or GIF by extension,
exactly the object's size, coloured by what the emulator's rules decided.

So a review page (or anyone who downloads an object) sees a picture: red for Porn, orange for
Ads, purple for Illegal, green for a normal image, in a checkerboard of the colour and a
lighter shade. The bytes are padded to the object's size inside the format (a private PNG
chunk, JPEG comment segments, a GIF comment extension), and carry the object's seed after the
marker `SEED_MARK`, so bytes the emulator served can be told apart (`FileContent`). Encoders
are minimal and pure Python (zlib for PNG; DC-only baseline JPEG; uncompressed-LZW GIF), and a
rendered picture is cached per (format, colour, size class): only the padding differs.
"""

from __future__ import annotations

import functools
import struct
import zlib

SEED_MARK = b"cos-scanner-emulator-seed:"
COLOURS = {
    "Porn": (214, 39, 40),
    "Ads": (247, 151, 29),
    "Illegal": (124, 58, 173),
    "Normal": (44, 160, 44),
}
THUMB = (96, 72)


def fmt_of(key: str) -> str | None:
    """The image format a key's extension names (None: not an image we draw)."""
    ext = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if ext in ("jpg", "jpeg"):
        return "jpeg"
    if ext in ("png", "gif"):
        return ext
    return None


def dims_for(size: int) -> tuple[int, int]:
    """Width and height of the picture in a file of `size` bytes (a size class)."""
    if size < 60_000:
        return 160, 120
    if size < 1_000_000:
        return 480, 360
    return 800, 600


def _pixels(rgb: tuple[int, int, int], w: int, h: int, x: int, y: int) -> tuple[int, int, int]:
    light = tuple(min(255, c + (255 - c) // 2) for c in rgb)
    cell = max(8, w // 10)
    return rgb if ((x // cell) + (y // cell)) % 2 == 0 else light  # type: ignore[return-value]


# --- PNG -----------------------------------------------------------------------------------


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@functools.lru_cache(maxsize=64)
def _png(rgb: tuple[int, int, int], w: int, h: int) -> tuple[bytes, bytes]:
    rows = b"".join(
        b"\x00" + b"".join(bytes(_pixels(rgb, w, h, x, y)) for x in range(w)) for y in range(h)
    )
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    return head + _chunk(b"IDAT", zlib.compress(rows, 9)), _chunk(b"IEND", b"")


def png(rgb: tuple[int, int, int], w: int, h: int, size: int, seed: bytes) -> bytes:
    body, end = _png(rgb, w, h)
    room = size - len(body) - len(end) - 12  # a padding chunk: length, tag, data, CRC
    pad = (SEED_MARK + seed + b"\x00" * max(0, room))[: max(0, room)]
    return (body + _chunk(b"emPd", pad) + end)[:size] if room >= 0 else (body + end)[:size]


# --- GIF (LZW without compression: a Clear code every 254 pixels keeps codes 9 bits) ------


@functools.lru_cache(maxsize=64)
def _gif(rgb: tuple[int, int, int], w: int, h: int) -> tuple[bytes, bytes]:
    light = _pixels(rgb, w, h, max(8, w // 10), 0)
    palette = bytes(rgb) + bytes(light) + b"\x00" * 6  # 4 colours (2 bits)
    head = b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF1, 0, 0) + palette
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
    codes: list[int] = [256]
    n = 0
    for y in range(h):
        for x in range(w):
            codes.append(0 if _pixels(rgb, w, h, x, y) == rgb else 1)
            n += 1
            if n % 254 == 0:
                codes.append(256)
    codes.append(257)
    bits = 0
    nbits = 0
    out = bytearray()
    for code in codes:
        bits |= code << nbits
        nbits += 9
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    blocks = b"".join(
        bytes([len(out[i : i + 255])]) + out[i : i + 255] for i in range(0, len(out), 255)
    )
    return head + image + b"\x08" + blocks + b"\x00", b"\x3b"


def gif(rgb: tuple[int, int, int], w: int, h: int, size: int, seed: bytes) -> bytes:
    body, end = _gif(rgb, w, h)
    room = size - len(body) - len(end) - 3  # the extension's header and terminator
    if room <= 0:
        return (body + end)[:size]
    data = (SEED_MARK + seed + b"\x00" * room)[:room]
    subs = bytearray()
    i = 0
    while i < len(data):
        take = min(255, len(data) - i)
        if len(data) - i - take == 1:  # a last sub-block needs >= 1 byte plus its length byte
            take -= 1
        subs += bytes([take]) + data[i : i + take]
        i += take
    ext = b"\x21\xfe" + bytes(subs) + b"\x00"
    return (body + ext + end)[:size]


# --- JPEG (baseline, 4:4:4, DC only: each 8x8 block one colour) ------------------------------

_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)  # the standard luminance DC table
_DC_VALS = tuple(range(12))


def _dc_codes() -> dict[int, tuple[int, int]]:
    codes: dict[int, tuple[int, int]] = {}
    code, k = 0, 0
    for length, count in enumerate(_DC_BITS, start=1):
        for _ in range(count):
            codes[_DC_VALS[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC = _dc_codes()


def _ycc(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return (
        round(y),
        round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b),
        round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b),
    )


def _segment(marker: int, data: bytes) -> bytes:
    return struct.pack(">HH", marker, len(data) + 2) + data


@functools.lru_cache(maxsize=64)
def _jpeg(rgb: tuple[int, int, int], w: int, h: int) -> tuple[bytes, bytes]:
    qt = b"\x00" + bytes([8] * 64)  # table 0: every coefficient / 8
    sof = struct.pack(">BHHB", 8, h, w, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    dht = b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALS)  # DC table 0
    dht += b"\x10" + bytes([1] + [0] * 15) + b"\x00"  # AC table 0: only EOB, code "0"
    sos = b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00"
    head = (
        b"\xff\xd8"
        + _segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + _segment(0xFFDB, qt)
        + _segment(0xFFC0, sof)
        + _segment(0xFFC4, dht)
        + _segment(0xFFDA, sos)
    )
    bits = 0
    nbits = 0
    out = bytearray()

    def put(value: int, length: int) -> None:
        nonlocal bits, nbits
        bits = (bits << length) | (value & ((1 << length) - 1))
        nbits += length
        while nbits >= 8:
            byte = (bits >> (nbits - 8)) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0)
            nbits -= 8

    prev = [0, 0, 0]
    for by in range(0, h, 8):
        for bx in range(0, w, 8):
            levels = _ycc(_pixels(rgb, w, h, bx, by))
            for c in range(3):
                dc = levels[c] - 128  # DC = 8 x (level - 128), quantised by 8
                diff, prev[c] = dc - prev[c], dc
                cat = abs(diff).bit_length()
                code, length = _DC[cat]
                put(code, length)
                if cat:
                    put(diff if diff > 0 else diff - 1, cat)
                put(0, 1)  # EOB: every AC coefficient is zero
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)  # pad with 1 bits
    return head + bytes(out), b"\xff\xd9"


def jpeg(rgb: tuple[int, int, int], w: int, h: int, size: int, seed: bytes) -> bytes:
    body, end = _jpeg(rgb, w, h)
    app = body.index(b"\xff\xdb")  # pad with comment segments before the tables
    room = size - len(body) - len(end)
    segments = bytearray()
    data = SEED_MARK + seed
    while room > 4:
        take = min(65533, room - 4)
        segments += _segment(0xFFFE, (data + b"\x00" * take)[:take])
        data = b""
        room -= take + 4
    return (body[:app] + bytes(segments) + body[app:] + end)[:size]


def picture(key: str, label: str, size: int, seed: bytes, *, thumb: bool = False) -> bytes | None:
    """The bytes of a synthetic image object (None when its key names no drawn format): the
    largest picture of its size class that fits in `size` bytes, padded to exactly `size`;
    with `thumb`, a small unpadded one (what `imageMogr2/thumbnail` returns)."""
    fmt = fmt_of(key)
    if fmt is None:
        return None
    rgb = COLOURS.get(label, COLOURS["Normal"])
    if thumb:
        return _bare(fmt, rgb, *THUMB)
    encode = {"png": png, "gif": gif, "jpeg": jpeg}[fmt]
    for w, h in (dims_for(size), (320, 240), (160, 120), THUMB):
        if fmt == "gif" and w * h > 320 * 240:
            continue  # pure-Python LZW: keep GIFs small
        if len(_bare(fmt, rgb, w, h)) <= size:
            return encode(rgb, w, h, size, seed)
    return encode(rgb, *THUMB, size, seed)  # smaller than any picture: truncated, as a file can be


def _bare(fmt: str, rgb: tuple[int, int, int], w: int, h: int) -> bytes:
    """The picture with no padding (a thumbnail)."""
    if fmt == "png":
        body, end = _png(rgb, w, h)
    elif fmt == "gif":
        body, end = _gif(rgb, w, h)
    else:
        body, end = _jpeg(rgb, w, h)
    return body + end


def content_type(key: str) -> str:
    return {"png": "image/png", "gif": "image/gif", "jpeg": "image/jpeg"}.get(
        fmt_of(key) or "", "application/octet-stream"
    )


def seed_in(data: bytes) -> bytes | None:
    """The seed a served picture carries (None: not bytes the emulator drew)."""
    at = data.find(SEED_MARK)
    if at < 0:
        return None
    start = at + len(SEED_MARK)
    return data[start : start + 32] if len(data) >= start + 32 else None
