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
