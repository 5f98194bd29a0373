"""Image normalisation, padding and the lossless alpha plane."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image

from vqcodec.imaging import decode_alpha, encode_alpha, prepare_image, to_image, to_padded_tensor


def test_modes_are_normalised():
    rgb = np.zeros((5, 6, 3), np.uint8)
    assert prepare_image(Image.fromarray(rgb)).mode == "RGB"
    assert prepare_image(Image.fromarray(rgb[:, :, 0])).mode == "L"
    assert prepare_image(Image.fromarray(rgb).convert("P")).mode == "RGB"
    la = prepare_image(Image.fromarray(rgb[:, :, 0]).convert("LA"))
    assert la.mode == "LA" and la.alpha.shape == (5, 6)


def test_padding_replicates_edges_to_the_stride():
    rgb = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    padded = to_padded_tensor(rgb, 8)
    assert padded.shape == (1, 3, 8, 8)
    assert np.allclose(padded[0, :, 7, 7].numpy(), rgb[4, 5] / 255.0)


def test_to_image_crops_and_restores_mode():
    padded = to_padded_tensor(np.full((3, 5, 3), 200, np.uint8), 8)[0]
    image = to_image(padded, 5, 3, "L", None)
    assert image.mode == "L" and image.size == (5, 3) and np.asarray(image).max() == 200


def test_alpha_round_trip():
    alpha = np.random.default_rng(0).integers(0, 256, (7, 9), dtype=np.uint8)
    assert np.array_equal(decode_alpha(encode_alpha(alpha), 9, 7), alpha)


def test_alpha_bomb_and_short_planes_are_refused():
    bomb = zlib.compress(bytes(10_000_000))
    with pytest.raises(ValueError, match="alpha"):
        decode_alpha(bomb, 10, 10)
    with pytest.raises(ValueError, match="alpha"):
        decode_alpha(zlib.compress(bytes(50)), 10, 10)
    with pytest.raises(ValueError, match="alpha"):
        decode_alpha(b"\x00garbage", 10, 10)


@pytest.mark.parametrize("mode, key, expected", [("L", 7, "LA"), ("RGB", (1, 2, 3), "RGBA")])
def test_colour_key_transparency_becomes_alpha(tmp_path, mode, key, expected):
    pixels = np.full((4, 5, 3), (1, 2, 3), np.uint8) if mode == "RGB" else np.full((4, 5), 7, np.uint8)
    pixels[0, 0] = 200
    Image.fromarray(pixels, mode).save(tmp_path / "keyed.png", transparency=key)
    prepared = prepare_image(tmp_path / "keyed.png")
    assert prepared.mode == expected
    expected_alpha = np.zeros((4, 5), np.uint8)
    expected_alpha[0, 0] = 255
    np.testing.assert_array_equal(prepared.alpha, expected_alpha)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width`×`height` but holds no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_too_many_pixels_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(12_000, 12_000))  # 144 M pixels, over the codec's 2**27
    with pytest.raises(ValueError, match="too large"):
        prepare_image(path)
