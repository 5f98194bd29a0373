"""Tiled encoding and decoding (`vqcodec.tiling`): the same tokens and pixels as the
whole-image pass, no seam along tile borders, and the API's coding of large images tile by
tile (format version 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import vqcodec
from tests.conftest import SAMPLE
from vqcodec import bitstream, coding, tiling, zoo
from vqcodec.bitstream import MIN_TILE_TOKENS
from vqcodec.imaging import to_padded_tensor

TILE = 4  # tokens: 32 pixels, so a small crop spans many tiles


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 203×157 crop of the sample photo: odd sizes, so edge tiles are partial."""
    with Image.open(SAMPLE) as image:
        return np.asarray(image.convert("RGB").crop((250, 150, 453, 307))).copy()


@pytest.fixture(scope="module")
def codec():
    return zoo.load_model().codec


def whole_and_tiled_latents(codec, photo, margin):
    with torch.inference_mode():
        whole = codec.encoder(to_padded_tensor(photo, 8))
        tiled = tiling.encode_latent(codec.encoder, photo, 8, torch.device("cpu"), tile=TILE, margin=margin)
    return whole, tiled


def decoded(codec, indices, photo, tile, margin):
    with torch.inference_mode():
        return tiling.decode_pixels(
            lambda window: codec.decode_indices(window), indices, photo.shape[0], photo.shape[1], 8, tile=tile, margin=margin
        )


def test_tiles_cover_the_grid_once():
    cover = np.zeros((11, 9), dtype=int)
    for rows, cols in tiling.tiles(11, 9, 4):
        cover[rows, cols] += 1
    assert (cover == 1).all()


def test_tiled_encoder_gives_the_whole_image_tokens(codec, photo):
    whole, tiled = whole_and_tiled_latents(codec, photo, tiling.MARGIN_TOKENS)
    assert tiled.shape == whole.shape and torch.allclose(tiled, whole, atol=1e-4)
    assert torch.equal(codec.quantizer.encode(tiled, 4), codec.quantizer.encode(whole, 4))


def test_tiled_decoder_gives_the_whole_image_pixels_and_no_seam(codec, photo):
    with torch.inference_mode():
        indices = codec.quantizer.encode(codec.encoder(to_padded_tensor(photo, 8)), 4)
    whole = decoded(codec, indices, photo, tile=1000, margin=0)
    tiled = decoded(codec, indices, photo, tile=TILE, margin=tiling.MARGIN_TOKENS)
    assert tiled.shape == photo.shape and np.abs(tiled.astype(int) - whole).max() <= 1
    # Seam check: the error against the photo on the rows and columns at tile borders is no
    # higher than elsewhere. Without margins (the control) the borders show.
    border = np.zeros(photo.shape[:2], dtype=bool)
    border[TILE * 8 - 1 :: TILE * 8] = border[TILE * 8 :: TILE * 8] = True
    border[:, TILE * 8 - 1 :: TILE * 8] = border[:, TILE * 8 :: TILE * 8] = True

    def border_excess(image):
        error = np.abs(image.astype(float) - photo).mean(axis=2)
        return error[border].mean() / error[~border].mean()

    assert border_excess(tiled) < 1.05
    assert border_excess(decoded(codec, indices, photo, tile=TILE, margin=0)) > 1.2


def test_large_images_are_coded_tile_by_tile_in_a_version_3_stream(monkeypatch, photo):
    """Tiling changes how the grid is coded (each tile a grid of its own), not its tokens."""
    whole = vqcodec.compress(photo, stages=2, rdo=0)
    monkeypatch.setattr(tiling, "TILE_TOKENS", MIN_TILE_TOKENS)
    tiled = vqcodec.compress(photo, stages=2, rdo=0)
    header = bitstream.read_header(tiled)
    assert (header.version, header.tile, header.tiles) == (3, MIN_TILE_TOKENS, 4)  # a 20×26 grid
    assert bitstream.read_header(whole).version == 1
    assert {key: vqcodec.api.describe_stream(tiled)[key] for key in ("version", "tile", "tiles")} == {
        "version": 3,
        "tile": MIN_TILE_TOKENS,
        "tiles": 4,
    }
    _, _, payloads = bitstream.unpack(tiled)
    loaded = zoo.load_model()
    tile_payloads = [bitstream.split_tiles(header, payload, stage) for stage, payload in enumerate(payloads)]
    tokens = coding.decode_tiles(loaded.context_prior, tile_payloads, 20, 26, header.codebook_size, header.tile)
    assert np.array_equal(tokens, coding.quantize(loaded.codec, photo, 2))  # the nearest codewords, tile borders or not
    # Each tile's payload is what coding the tile's tokens as a grid of its own gives.
    assert tile_payloads[0][3] == coding.encode_stages(loaded.context_prior, tokens[:, 16:, 16:])[0]
    whole_image = np.asarray(vqcodec.decompress(whole)).astype(int)
    assert np.abs(np.asarray(vqcodec.decompress(tiled)).astype(int) - whole_image).max() <= 1
    one_stage = np.asarray(vqcodec.decompress(tiled[: header.prefix_size(1)], stages=1)).astype(int)
    assert np.abs(one_stage - np.asarray(vqcodec.decompress(whole, stages=1))).max() <= 1


def test_a_damaged_tile_is_named(monkeypatch, photo):
    monkeypatch.setattr(tiling, "TILE_TOKENS", MIN_TILE_TOKENS)
    header, _, payloads = bitstream.unpack(vqcodec.compress(photo, stages=1, rdo=0))
    tiles = bitstream.split_tiles(header, payloads[0], 0)
    fields = {name: getattr(header, name) for name in ("model_id", "weights_hash", "prior", "prior_hash", "width", "height")}
    forged = bitstream.pack(
        **fields,
        mode=header.mode,
        stride=header.stride,
        codebook_size=header.codebook_size,
        alpha=b"",
        stage_payloads=[bitstream.join_tiles([tiles[0], b"", *tiles[2:]])],
        tile=header.tile,
    )
    with pytest.raises(bitstream.BitstreamError, match=r"tile 2 \(indices 0..15 × 16..25\): stage 1 payload runs out"):
        vqcodec.decompress(forged)
