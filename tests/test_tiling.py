"""Tiled encoding and decoding (`vqcodec.tiling`): the same tokens and pixels as the
whole-image pass, no seam along tile borders, margins past the networks' measured reach,
and the API's coding of large images tile by tile (format version 3)."""

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
from vqcodec.model import CodecConfig
from vqcodec.model.decoder import Decoder, decoder_reach
from vqcodec.model.encoder import Encoder, encoder_reach

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
        tiled = tiling.encode_latent(codec.encoder, photo, 8, torch.device("cpu"), margin, tile=TILE)
    return whole, tiled


def decoded(codec, indices, photo, tile, margin):
    with torch.inference_mode():
        return tiling.decode_pixels(
            lambda window: codec.decode_indices(window), indices, photo.shape[0], photo.shape[1], 8, margin, tile=tile
        )


def test_tiles_cover_the_grid_once():
    cover = np.zeros((11, 9), dtype=int)
    for rows, cols in tiling.tiles(11, 9, 4):
        cover[rows, cols] += 1
    assert (cover == 1).all()


def test_tiled_encoder_gives_the_whole_image_tokens(codec, photo):
    whole, tiled = whole_and_tiled_latents(codec, photo, tiling.margin_for(codec.config))
    assert tiled.shape == whole.shape and torch.allclose(tiled, whole, atol=1e-4)
    assert torch.equal(codec.quantizer.encode(tiled, 4), codec.quantizer.encode(whole, 4))


def test_tiled_decoder_gives_the_whole_image_pixels_and_no_seam(codec, photo):
    with torch.inference_mode():
        indices = codec.quantizer.encode(codec.encoder(to_padded_tensor(photo, 8)), 4)
    whole = decoded(codec, indices, photo, tile=1000, margin=0)
    tiled = decoded(codec, indices, photo, tile=TILE, margin=tiling.margin_for(codec.config))
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


RANDOM_CONFIGS = [
    CodecConfig(),  # the shipped architecture
    CodecConfig(width_fine=16, width_coarse=16, encoder_blocks=(2, 3), decoder_blocks=(4, 3)),  # the wide recipe's depths
    CodecConfig(stride=4, width_fine=8, width_coarse=8, encoder_blocks=(1, 0), decoder_blocks=(0, 2)),
    CodecConfig(stride=16, width_fine=8, width_coarse=8, encoder_blocks=(2, 1), decoder_blocks=(1, 1)),
]


def reach_measured(network, shape, stride, out_stride, centre_token):
    """The farthest token (in output tokens) from `centre_token` whose output changes when the
    input at `centre_token` (an in_stride block) changes, for a randomly weighted network."""
    torch.manual_seed(0)
    network = network.double()
    for parameter in network.parameters():  # the blocks' second convolutions start at zero
        torch.nn.init.normal_(parameter, std=0.2)
    data = torch.rand(shape, dtype=torch.float64)
    moved = data.clone()
    block = slice(centre_token * stride, (centre_token + 1) * stride)
    moved[:, :, block, block] += 1.0
    with torch.no_grad():
        change = (network(moved) - network(data)).abs().amax(dim=(0, 1)) > 1e-12  # [H, W]
    rows, cols = np.nonzero(change.numpy())
    return int(max(np.abs(rows // out_stride - centre_token).max(), np.abs(cols // out_stride - centre_token).max()))


@pytest.mark.parametrize("config", RANDOM_CONFIGS, ids=["shipped", "wide-depths", "stride4", "stride16"])
def test_reach_is_what_the_networks_depend_on(config):
    """The margins rest on these numbers: exact for every architecture, not a bound."""
    grid, f = 41, config.stride
    assert reach_measured(Encoder(config), (1, 3, grid * f, grid * f), f, 1, grid // 2) == encoder_reach(config)
    assert reach_measured(Decoder(config), (1, config.latent_dim, grid, grid), 1, f, grid // 2) == decoder_reach(config)


def test_margins_pass_both_reaches_and_keep_the_shipped_files():
    assert tiling.margin_for(CodecConfig()) == 12  # what every tiled file of the shipped model was written with
    wide = CodecConfig(width_fine=96, width_coarse=192, encoder_blocks=(2, 3), decoder_blocks=(4, 3))
    assert tiling.margin_for(wide) == decoder_reach(wide) + 1 == 15 > encoder_reach(wide) + 1


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


def test_a_bpp_target_chooses_among_tiled_streams(monkeypatch, photo):
    """One encoder pass serves every quality point a bpp target weighs, tile by tile."""
    monkeypatch.setattr(tiling, "TILE_TOKENS", MIN_TILE_TOKENS)
    pixels = photo.shape[0] * photo.shape[1]
    ladder = list(dict.fromkeys(vqcodec.operating_point(quality) for quality in range(101)))
    streams = {point: vqcodec.compress(photo, stages=point[0], rdo=point[1]) for point in ladder}
    aimed_at = len(streams[ladder[len(ladder) // 2]])
    chosen = vqcodec.compress(photo, bpp=aimed_at * 8 / pixels)
    assert bitstream.read_header(chosen).tiles == 4
    assert chosen == streams[[point for point in ladder if len(streams[point]) <= aimed_at][-1]]


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
