"""browser.png: a screenshot's size from its PNG header (no browser needed)."""

from __future__ import annotations

import struct
import zlib

import pytest

from eks_hub_runbook.browser import png


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return png.PNG_SIGNATURE + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_png_size_reads_width_and_height(tmp_path):
    image = tmp_path / "shot.png"
    image.write_bytes(_png_header(1024, 640) + b"rest of the file")
    assert png.png_size(image) == (1024, 640)
    assert png.png_size(str(image)) == (1024, 640)


def test_png_size_rejects_other_files(tmp_path):
    fake = tmp_path / "x.png"
    fake.write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(ValueError, match="is not a PNG image"):
        png.png_size(fake)


@pytest.mark.parametrize("content", [b"", png.PNG_SIGNATURE, _png_header(1, 1)[:20]], ids=["empty", "signature", "short"])
def test_png_size_rejects_truncated_files(tmp_path, content):
    short = tmp_path / "short.png"
    short.write_bytes(content)
    with pytest.raises(ValueError):
        png.png_size(short)


def test_png_size_wants_the_ihdr_chunk_first(tmp_path):
    other = tmp_path / "other.png"
    other.write_bytes(_png_header(10, 10).replace(b"IHDR", b"tEXt"))
    with pytest.raises(ValueError):
        png.png_size(other)


def test_a_real_png_from_matplotlib(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure = plt.figure(figsize=(2, 1), dpi=100)
    path = tmp_path / "plot.png"
    figure.savefig(path)
    plt.close(figure)
    assert png.png_size(path) == (200, 100)
