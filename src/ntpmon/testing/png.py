"""A minimal PNG reader for tests: enough to check a browser screenshot is not blank.

Decodes 8-bit greyscale, RGB and RGBA non-interlaced images (what Chromium writes) with zlib
alone, so the tests need no imaging library.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


class PngError(ValueError):
    """The bytes are not a PNG this reader understands."""


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]
    """Unfiltered scanlines, ``width * channels`` bytes each."""

    def pixels(self) -> list[tuple[int, ...]]:
        c = self.channels
        return [tuple(row[x * c : (x + 1) * c]) for row in self.rows for x in range(self.width)]

    def distinct_colours(self) -> int:
        return len(set(self.pixels()))

    def count_colour(self, rgb: tuple[int, int, int], tolerance: int = 0) -> int:
        """Pixels within ``tolerance`` per channel of ``rgb`` (alpha ignored)."""
        if self.channels < 3:
            raise PngError("colour search needs an RGB image")
        return sum(
            1 for p in self.pixels() if all(abs(p[i] - rgb[i]) <= tolerance for i in range(3))
        )


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(data: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    pos = 0
    for _ in range(height):
        kind = data[pos]
        line = bytearray(data[pos + 1 : pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF
            elif kind != 0:
                raise PngError(f"unknown filter type {kind}")
        rows.append(bytes(line))
        previous = line
    return rows


def decode_png(blob: bytes) -> Image:
    """Decode ``blob``; raises :class:`PngError` for anything unsupported or corrupt."""
    if not blob.startswith(SIGNATURE):
        raise PngError("not a PNG file (bad signature)")
    pos = len(SIGNATURE)
    header: tuple[int, ...] | None = None
    idat = bytearray()
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        chunk = blob[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    if header is None:
        raise PngError("no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in CHANNELS or interlace:
        raise PngError(f"unsupported PNG: depth {depth}, colour type {colour_type}")
    channels = CHANNELS[colour_type]
    rows = _unfilter(zlib.decompress(bytes(idat)), width, height, channels)
    return Image(width=width, height=height, channels=channels, rows=rows)
