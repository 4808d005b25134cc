"""Decoding encoded images (PNG, JPEG, ...) into arrays, the same way for training, prediction and serving.

The header is read first (Pillow reads only the first bytes), so an image that declares more pixels than
`max_pixels` is refused before any memory is spent on decoding it; cv2 then decodes.
"""

from __future__ import annotations

import io
import re

import numpy as np

MAX_PIXELS = 40_000_000  # 40 MP: a 7000 x 5700 photo decodes to 120 MB of RGB; larger is refused


def image_size(data: bytes, where: str) -> tuple[int, int]:
    """(width, height) from the image header alone; ValueError naming `where` if it is not an image."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError(f"{where}: image does not decode (empty: 0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError as err:  # Pillow's own limit (179 MP) stops it reading the header
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(pixels.group(1)) / 1e6:.1f} MP" if pixels else "more than 179 MP"
        raise ValueError(f"{where}: image of {size} exceeds the limit of {MAX_PIXELS / 1e6:.0f} MP") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{where}: image does not decode (not a PNG, JPEG or other image file: {err})") from None


def decode_image(data: bytes, where: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 RGB; grey images are repeated to three channels. Errors name `where`."""
    import cv2

    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"{where}: expected encoded image bytes, got {type(data).__name__}")
    data = bytes(data)
    width, height = image_size(data, where)
    if width * height > max_pixels:
        raise ValueError(
            f"{where}: image of {width} x {height} = {width * height / 1e6:.1f} MP exceeds the limit of "
            f"{max_pixels / 1e6:.0f} MP; downscale it first"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise ValueError(f"{where}: image does not decode (corrupt or truncated)")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
