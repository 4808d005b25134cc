"""The one image decoder: RGB out, bad bytes and oversized headers refused with the row or file named."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from comic.images import MAX_PIXELS, decode_image


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` pixels and that holds almost no data (the 1.2 MB
    20000 x 20000 PNG of a hostile client, without the 1.2 MB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_grey_and_colour_images_decode_to_rgb():
    grey = cv2.imencode(".png", np.full((4, 5), 7, np.uint8))[1].tobytes()
    colour = cv2.imencode(".png", np.dstack([np.zeros((4, 5), np.uint8)] * 2 + [np.full((4, 5), 9, np.uint8)]))[1]
    assert decode_image(grey, "x").shape == (4, 5, 3) and decode_image(grey, "x").max() == 7
    assert decode_image(colour.tobytes(), "x")[0, 0].tolist() == [9, 0, 0]  # BGR on disk, RGB out


def test_an_image_declaring_more_pixels_than_the_limit_is_refused_before_decoding():
    with pytest.raises(ValueError, match=r"row 3: image of 400\.0 MP exceeds the limit of 40 MP"):
        decode_image(png_header(20000, 20000), "row 3")
    with pytest.raises(ValueError, match=r"row 4: image of 8000 x 6000 = 48\.0 MP exceeds the limit of 40 MP"):
        decode_image(png_header(8000, 6000), "row 4")
    assert MAX_PIXELS == 40_000_000


@pytest.mark.parametrize(
    "data,message",
    [(b"", "empty: 0 bytes"), (b"not an image", "not a PNG, JPEG"), (10**15, "expected encoded image bytes, got int")],
)
def test_bad_bytes_are_a_clear_error_naming_where_they_came_from(data, message):
    with pytest.raises(ValueError, match=rf"photos/a\.jpg: .*{message}"):
        decode_image(data, "photos/a.jpg")
