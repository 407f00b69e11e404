"""The size of a PNG screenshot, read from its header (no imaging library needed)."""

from __future__ import annotations

import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file; raises ValueError if it is not a PNG."""
    head = Path(path).read_bytes()[:24]
    # signature (8 bytes), then the IHDR chunk: length (4), type (4), width and height (4 + 4)
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG image")
    return struct.unpack(">II", head[16:24])
