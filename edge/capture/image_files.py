"""Reading still images safely: the size is checked before any pixel is decoded.

A small file can decode to a huge image (a 1 MB PNG of 30000x30000 pixels takes 5 GB), so
:func:`read_image` reads the width and height from the file header (PNG, JPEG, GIF, BMP,
WebP) and refuses anything above :data:`MAX_PIXELS` before OpenCV decodes it. Other
formats are left to OpenCV's own limit.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

#: Largest image decoded, in pixels: 50 megapixels is above any camera a device uses
#: (a 12 MP Pi camera, a 4K frame is 8.3 MP) and about 150 MB as BGR.
MAX_PIXELS = 50_000_000


#: Still-image files every reader here takes (OpenCV decodes them all): the device's image
#: folders and photos, and the class folders of your own faces in training.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and why."""


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file, refusing it above ``max_pixels`` before decoding.

    Raises:
        ImageError: unreadable, not an image, or too large.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError as exc:
        raise ImageError(f"{p}: cannot read ({exc.strerror})") from None
    size = header_size(head)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{p}: {size[0]}x{size[1]} pixels is above the limit of "
                         f"{max_pixels:,}; shrink it first")
    image = cv2.imread(str(p), flags)
    if image is None:
        raise ImageError(f"{p}: unreadable image (not a format OpenCV decodes, or corrupt)")
    return image


def header_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first bytes of a PNG, GIF, BMP, WebP or JPEG file."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head.startswith(b"BM") and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    # Walk the marker segments to the first start-of-frame (SOF0..SOF15 but DHT/JPG/DAC).
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", head[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", head[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None
