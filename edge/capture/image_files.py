"""Reading still images safely: every decode is bounded before it starts.

A small file can decode to a huge image (a few hundred bytes of JPEG can claim 60000x60000
pixels, 5 GB as BGR), or make the decoder allocate what a header claims (a PNG chunk of
"4 GB"). So only formats whose headers are parsed here are decoded: PNG (every chunk
walked, each length checked against the file), JPEG (every marker segment walked to the
frame header, fill bytes and metadata of any length included), BMP, WebP and PGM/PPM;
anything else, TIFF included, is refused. The width and height must be found and stay
under the caller's pixel limit (:data:`MAX_PIXELS` by default) before OpenCV sees a byte.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import cv2
import numpy as np

#: Largest image decoded, in pixels: 50 megapixels is above any camera a device uses
#: (a 12 MP Pi camera, a 4K frame is 8.3 MP) and about 150 MB as BGR.
MAX_PIXELS = 50_000_000

#: Largest image file read: a 50-megapixel PNG stays well under it.
MAX_FILE_BYTES = 256_000_000

#: What one decode may take, in bytes: the decoded image plus, for a progressive JPEG,
#: the coefficients the decoder keeps for the whole image (2 bytes per pixel and colour
#: component). A 24 MP phone photo, progressive, fits; a small file claiming 50 MP in
#: four components does not.
MAX_DECODE_BYTES = 200_000_000

#: Formats other than JPEG are decoded whole (their decoders cannot shrink while they
#: decode and keep buffers of their own beside the image): at most this many pixels.
MAX_OTHER_PIXELS = 16_000_000

#: A JPEG larger than this is decoded at 1/2, 1/4 or 1/8 of its size (the decoder's own
#: scaling, which also spares the memory): faces need nothing finer.
MAX_DECODED_PIXELS = 12_000_000

#: Progressive JPEGs from cameras and editors have about 10 scans; each scan makes the
#: decoder pass over the whole image again.
MAX_JPEG_SCANS = 64

#: Still-image files every reader here takes: the device's image folders and photos, and
#: the class folders of your own faces in training.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".pgm", ".ppm"})

#: What the refusal of an unknown format says.
FORMATS = "PNG, JPEG, BMP, WebP or PGM/PPM"


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and why.

    ``too_large`` tells a size refusal (HTTP 413) from an unreadable image (400).
    """

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file, refusing it before decoding unless its header is parsed and
    its size is under ``max_pixels``.

    Raises:
        ImageError: unreadable, not an accepted format, or too large.
    """
    p = Path(path)
    try:
        if not p.is_file():
            raise ImageError(f"{p}: not a regular file")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"{p}: {p.stat().st_size:,} bytes is above the limit of "
                             f"{MAX_FILE_BYTES:,} for an image file", too_large=True)
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p}: cannot read ({exc.strerror})") from None
    return decode_image(data, str(p), flags, max_pixels)


def decode_image(data: bytes, name: str, flags: int = cv2.IMREAD_COLOR,
                 max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``data`` (an image file's bytes) under the same checks as :func:`read_image`.

    Raises:
        ImageError: naming ``name``: not an accepted format, corrupt, or too large.
    """
    try:
        size = image_size(data)
    except ValueError as exc:
        raise ImageError(f"{name}: unreadable image: {exc}") from None
    if size is None:
        raise ImageError(f"{name}: unreadable image: not an image this device reads "
                         f"({FORMATS})")
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: unreadable image: its header says {w}x{h} pixels; the "
                         "file is corrupt")
    if w * h > max_pixels:
        raise ImageError(f"{name}: {w}x{h} pixels is above the limit of {max_pixels:,}; "
                         "shrink it first", too_large=True)
    if data.startswith(b"\x89PNG"):
        try:
            _png_size(data)  # every chunk's length against the file, before decoding
        except ValueError as exc:
            raise ImageError(f"{name}: unreadable image: {exc}") from None
    if data.startswith(b"\xff\xd8"):
        flags = _jpeg_plan(data, name, w, h, flags)
    elif w * h > min(max_pixels, MAX_OTHER_PIXELS):
        raise ImageError(f"{name}: {w}x{h} pixels is above the limit of "
                         f"{min(max_pixels, MAX_OTHER_PIXELS):,} for a format other than "
                         "JPEG; shrink it or save it as JPEG", too_large=True)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ImageError(f"{name}: unreadable image (corrupt, or not what its header says)")
    return image


_REDUCED = {cv2.IMREAD_COLOR: (cv2.IMREAD_COLOR, cv2.IMREAD_REDUCED_COLOR_2,
                              cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_COLOR_8),
            cv2.IMREAD_GRAYSCALE: (cv2.IMREAD_GRAYSCALE, cv2.IMREAD_REDUCED_GRAYSCALE_2,
                                   cv2.IMREAD_REDUCED_GRAYSCALE_4,
                                   cv2.IMREAD_REDUCED_GRAYSCALE_8)}


def _jpeg_plan(data: bytes, name: str, w: int, h: int, flags: int) -> int:
    """The decode flags for a JPEG within the budget (reduced when it is large).

    Raises:
        ImageError: too many scans, or over :data:`MAX_DECODE_BYTES` even reduced.
    """
    try:
        components, scans, progressive = _jpeg_layout(data)
    except ValueError as exc:
        raise ImageError(f"{name}: unreadable image: {exc}") from None
    if scans > MAX_JPEG_SCANS:
        raise ImageError(f"{name}: a JPEG of {scans:,} scans (cameras write about 10); "
                         f"refused above {MAX_JPEG_SCANS}", too_large=True)
    step = 0
    while step < 3 and (w >> step) * (h >> step) > MAX_DECODED_PIXELS:
        step += 1
    out = (w >> step) * (h >> step) * (3 if flags != cv2.IMREAD_GRAYSCALE else 1)
    need = out + (w * h * components * 2 if progressive else 0)
    if need > MAX_DECODE_BYTES:
        raise ImageError(f"{name}: decoding this {w}x{h} JPEG ({components} components"
                         f"{', progressive' if progressive else ''}) would take about "
                         f"{need >> 20} MB, above {MAX_DECODE_BYTES >> 20} MB; shrink it "
                         "first", too_large=True)
    return _REDUCED[flags][step] if flags in _REDUCED else flags


def _jpeg_layout(data: bytes) -> tuple[int, int, bool]:
    """A JPEG's colour components, its number of scans, and whether it is progressive,
    from its markers (the compressed data between them skipped)."""
    i, components, scans, progressive = 2, 0, 0, False
    n = len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            # Inside a scan's compressed data: on to the next marker (0xFF then a byte
            # that is neither a stuffed 0x00 nor a restart marker).
            i = data.find(b"\xff", i)
            if i < 0:
                break
            continue
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        i += 2
        if marker == 0x00 or 0xD0 <= marker <= 0xD8 or marker == 0x01:
            continue
        if marker == 0xD9 or i + 2 > n:
            break
        length = struct.unpack(">H", data[i:i + 2])[0]
        if length < 2:
            raise ValueError("JPEG segment of a negative length; the file is corrupt")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 8 <= n:
            components = max(components, data[i + 7])
            progressive = progressive or marker in (0xC2, 0xC6, 0xCA, 0xCE)
        elif marker == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                break
        i += length
    return max(components, 1), scans, progressive


def give_back_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise, so a server
    that decoded a few large photos would stay hundreds of MB above its baseline)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of an accepted image from its headers; ``None`` for any other
    format.

    Raises:
        ValueError: an accepted format whose headers are corrupt, truncated, or claim more
            data than the file holds.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError("PNG without a header chunk; the file is corrupt")
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"BM") and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] in (b"P2", b"P5", b"P3", b"P6"):
        return _pnm_size(data)
    return None




def _png_size(data: bytes) -> tuple[int, int]:
    # Walk every chunk: a chunk that claims more bytes than the file holds would make the
    # decoder allocate what it claims.
    i, size = 8, None
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        if length > len(data) - i - 12:
            raise ValueError(f"PNG chunk {kind!r} claims {length:,} bytes, more than the "
                             "file holds; the file is corrupt")
        if kind == b"IHDR":
            if length < 8:
                raise ValueError("PNG header chunk is too short; the file is corrupt")
            size = struct.unpack(">II", data[i + 8:i + 16])
        if kind == b"IEND":
            break
        i += 12 + length
    if size is None:
        raise ValueError("PNG without a header chunk; the file is corrupt")
    return size


def _jpeg_size(data: bytes) -> tuple[int, int]:
    # Walk the marker segments to the first start-of-frame (SOF0..SOF15 but DHT/JPG/DAC),
    # skipping fill bytes (any number of 0xFF before a marker) and segments of any length.
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            raise ValueError("JPEG marker expected; the file is corrupt")
        while i < len(data) and data[i] == 0xFF:
            i += 1
        if i >= len(data):
            break
        marker = data[i]
        i += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image, or the scan before any frame header
        if i + 2 > len(data):
            break
        length = struct.unpack(">H", data[i:i + 2])[0]
        if length < 2:
            raise ValueError("JPEG segment of a negative length; the file is corrupt")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 7 > len(data):
                break
            h, w = struct.unpack(">HH", data[i + 3:i + 7])
            return w, h
        i += length
    raise ValueError("JPEG without a frame header; the file is truncated or corrupt")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    raise ValueError("WebP without a readable size; the file is corrupt")


def _pnm_size(data: bytes) -> tuple[int, int]:
    # Tokenised as OpenCV's reader does: a comment runs from '#' to the end of its line,
    # and either '\n' or '\r' ends a line (a header that hid its real size behind a
    # comment ended by '\r' would pass as 3x3 and decode as 10000x10000).
    fields: list[int] = []
    i, head = 2, data[:1024]
    while i < len(head) and len(fields) < 2:
        c = head[i:i + 1]
        if c == b"#":
            while i < len(head) and head[i:i + 1] not in (b"\n", b"\r"):
                i += 1
        elif c.isdigit():
            j = i
            while j < len(head) and head[j:j + 1].isdigit():
                j += 1
            fields.append(int(head[i:j]))
            i = j
            continue
        elif not c.isspace():
            raise ValueError("PGM/PPM header is not numbers; the file is corrupt")
        i += 1
    if len(fields) < 2:
        raise ValueError("PGM/PPM header without a size; the file is corrupt")
    return fields[0], fields[1]


#: What :func:`write_image` encodes, by suffix.
WRITABLE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})


def check_writable_suffix(path: str | Path) -> None:
    """Refuse an output image path whose suffix names no format :func:`write_image` writes.

    Raises:
        ImageError: no suffix, or another one.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise ImageError(f"{path}: an image is written as "
                         f"{', '.join(sorted(WRITABLE_SUFFIXES))}; end the name with one")


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Encode ``image`` by ``path``'s suffix and write it.

    The bytes are encoded in memory and written by Python, so any file name the system
    takes works (OpenCV's own file writer crashes on names that are not UTF-8).

    Raises:
        ImageError: the suffix names no format written here.
        OSError: the file cannot be written (the message names it).
    """
    check_writable_suffix(path)
    ok, data = cv2.imencode(Path(path).suffix.lower(), image)
    if not ok:
        raise ImageError(f"{path}: the image could not be encoded")
    try:
        Path(path).write_bytes(data.tobytes())
    except OSError as exc:
        raise OSError(f"{path}: cannot write ({exc.strerror or exc})") from None
