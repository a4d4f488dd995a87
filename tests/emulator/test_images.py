"""The emulator's synthetic images are real pictures (Pillow is the referee): PNG, JPEG and
GIF by extension, exactly the object's size, coloured by the emulator's verdict; copies are
byte-identical; `imageMogr2/thumbnail` returns a small picture through a signed GET."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from PIL import Image

from scanner.config import CosSettings
from scanner.cos.client import HttpClient, cos_service
from scanner.emulator import DEFAULT_BUCKET
from scanner.emulator.bucket import StoredObject, etag_of
from scanner.emulator.images import COLOURS
from tests.helpers import Emulator

CASES = [("nsfw/a.jpg", "Porn"), ("ad_b.png", "Ads"), ("plain/c.gif", "Normal"),
         ("nsfw/d.png", "Porn"), ("ad_e.jpeg", "Ads")]  # fmt: skip


def _put(emulator: Emulator, key: str, size: int, etag: str = "") -> None:
    obj = StoredObject(etag or etag_of(key), size, datetime.now(UTC))
    emulator.state.bucket.put(key, obj)


async def _get(http: HttpClient, emulator: Emulator, key: str, **params: str) -> bytes:
    service = cos_service(CosSettings(bucket=DEFAULT_BUCKET, endpoint=emulator.url))
    reply = await http.send(service, "GET", "/" + key, params=params)
    return reply.body


@pytest.mark.parametrize("size", [40_000, 700_000, 3_000_000])
async def test_objects_are_decodable_pictures_of_their_verdict(
    emulator: Emulator, http: HttpClient, size: int
) -> None:
    for key, label in CASES:
        _put(emulator, key, size)
        data = await _get(http, emulator, key)
        assert len(data) == size
        image = Image.open(io.BytesIO(data))
        image.load()
        assert (
            image.format
            == {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "gif": "GIF"}[key.rsplit(".", 1)[1]]
        )
        got = image.convert("RGB").getpixel((2, 2))
        assert isinstance(got, tuple)
        assert all(abs(a - b) <= 2 for a, b in zip(got, COLOURS[label], strict=True)), key


async def test_copies_are_the_same_bytes_and_thumbnails_are_small(
    emulator: Emulator, http: HttpClient
) -> None:
    _put(emulator, "nsfw/x.jpg", 90_000, etag="0cc175b9c0f1b6a831c399e269772661")
    _put(emulator, "copy/y.jpg", 90_000, etag="0cc175b9c0f1b6a831c399e269772661")
    emulator.state.bucket.objects["copy/y.jpg"].content = "nsfw/x.jpg"
    assert await _get(http, emulator, "nsfw/x.jpg") == await _get(http, emulator, "copy/y.jpg")
    thumb = await _get(http, emulator, "nsfw/x.jpg", **{"imageMogr2/thumbnail/!20p": ""})
    image = Image.open(io.BytesIO(thumb))
    assert image.size == (96, 72)
    assert len(thumb) < 5_000
    _put(emulator, "docs/a.txt", 500)
    with pytest.raises(Exception, match="InvalidImageFormat"):
        await _get(http, emulator, "docs/a.txt", **{"imageMogr2/thumbnail/!20p": ""})
