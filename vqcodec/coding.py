"""The one quantize-and-code pipeline, from pixels to stage payloads and back:

    pixels ─► encoder ─► nearest codewords or the rate–distortion search against the coding
           prior ─► no free tail a decoder refuses ─► stage payloads (tile by tile on large
           images: `encode_tiles`)
    payloads ─► indices (tile by tile) ─► codebook lookup + decoder (in tiles) ─► pixels

Everything that writes or reads indices the way `vqcodec encode` does (the API, inpainting,
prior training's token cache, the export, the benchmarks) goes through these functions, so
they all see the same indices and bytes. The container and names of models are the API's
(`vqcodec.api`); the device every step runs on is an explicit argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from vqcodec.devices import exact_matmul, on_device, serial_on_cpu
from vqcodec.entropy.free_tail import limit_free_tails
from vqcodec.entropy.grid_coding import Prior, decode_grid, encode_grid
from vqcodec.entropy.rdo import quantize_for_rate
from vqcodec.model import VQCodec
from vqcodec.refine import refine_latent
from vqcodec.tiling import decode_pixels, encode_latent, latent_tiles, margin_for, pixels_of, tiles

CPU = torch.device("cpu")


@torch.no_grad()
def latent_of(codec: VQCodec, rgb: np.ndarray, device: torch.device = CPU) -> torch.Tensor:
    """The encoder's latent `[D, h, w]` (on the CPU) of a uint8 image `[H, W, 3]`, h = ceil(H/f)."""
    return encode_latent(on_device(codec, device).encoder, rgb, codec.config.stride, device, margin_for(codec.config))[0]


@torch.no_grad()
def quantize(
    codec: VQCodec,
    rgb: np.ndarray,
    stages: int,
    prior: Prior | None = None,
    lambdas: Sequence[float] | None = None,
    device: torch.device = CPU,
    refine_steps: int = 0,
) -> np.ndarray:
    """Indices `[stages, h, w]` int64 of a uint8 image `[H, W, 3]`.

    Args:
        stages: residual stages to quantize (1..S).
        prior: the prior that will code the indices. The search runs against it, and the
            indices keep to what its decoder accepts (no over-long free tail). None: indices
            that are never coded (training caches), nearest codewords only.
        lambdas: relative λ per stage for the rate–distortion search (`quantize_for_rate`);
            None: the nearest codeword at every stage, searched on `device`.
        refine_steps: gradient steps on the latent before it is quantized
            (`vqcodec.refine`; 0: the encoder's latent as it is).
    """
    if lambdas is not None and prior is None:
        raise ValueError("the rate-distortion search needs the prior that will code the indices")
    latent = _refined(codec, rgb, latent_of(codec, rgb, device), stages, device, refine_steps)
    return _searched(codec, latent, stages, prior, lambdas, device)


def _refined(
    codec: VQCodec, rgb: np.ndarray, latent: torch.Tensor, stages: int, device: torch.device, refine_steps: int
) -> torch.Tensor:
    return refine_latent(codec, rgb, latent, stages, refine_steps, device) if refine_steps else latent


def _searched(
    codec: VQCodec,
    latent: torch.Tensor,
    stages: int,
    prior: Prior | None,
    lambdas: Sequence[float] | None,
    device: torch.device,
) -> np.ndarray:
    """Indices of the (refined) latent: nearest codewords or the search, then no free tail."""
    books = codec.quantizer.codebooks(stages)
    if lambdas is None:
        indices = on_device(codec, device).quantizer.encode(latent[None].to(device), stages)[0].cpu().numpy()
    else:
        assert prior is not None  # `quantize` checks it before the encoder runs; `encode_tiles` needs one
        with serial_on_cpu(CPU):  # the search runs on the CPU, as the latent
            indices = quantize_for_rate(latent, books, prior, lambdas)
    return indices if prior is None else limit_free_tails(indices, latent, books, prior)


@torch.no_grad()
def encode_tiles(
    codec: VQCodec,
    rgb: np.ndarray,
    stages: int,
    prior: Prior,
    lambdas: Sequence[float] | None = None,
    device: torch.device = CPU,
    tile: int | None = None,
    refine_steps: int = 0,
) -> list[list[bytes]]:
    """Per stage, the payloads of the tiles of the token grid (`tiling.tiles` order), each tile
    quantized and coded as a grid of its own, so memory stays bounded at any image size.

    An image whose grid fits one tile (at most `tile`, default `TILE_TOKENS`, a side) is one
    tile: its payloads are exactly `encode_stages(prior, quantize(...))`. Arguments as in
    `quantize`; the tiles of a large image are refined each against its own pixels.
    """
    return encode_tiles_for_profiles(codec, rgb, stages, prior, [(stages, lambdas)], device, tile, refine_steps)[0]


@torch.no_grad()
def encode_tiles_for_profiles(
    codec: VQCodec,
    rgb: np.ndarray,
    stages: int,
    prior: Prior,
    profiles: Sequence[tuple[int, Sequence[float] | None]],
    device: torch.device = CPU,
    tile: int | None = None,
    refine_steps: int = 0,
) -> list[list[list[bytes]]]:
    """`encode_tiles` once per profile of `profiles`, (stage count up to `stages`, λ or None for
    the nearest codewords), in order: the encoder and the refinement (at `stages`) run once per
    tile, the search and the coding per profile. A stage's indices do not depend on the stages
    after it, so a profile coded to fewer stages gives the prefix of one coded to more."""
    payloads: list[list[list[bytes]]] = [[[] for _ in range(count)] for count, _ in profiles]
    stride = codec.config.stride
    encoder = on_device(codec, device).encoder
    for rows, cols, latent in latent_tiles(encoder, rgb, stride, device, margin_for(codec.config), tile):
        latent = _refined(codec, pixels_of(rgb, rows, cols, stride), latent[0], stages, device, refine_steps)
        for profile, (count, lambdas) in zip(payloads, profiles, strict=True):
            indices = _searched(codec, latent, count, prior, lambdas, device)
            for stage, payload in enumerate(encode_stages(prior, indices, device)):
                profile[stage].append(payload)
    return payloads


def encode_stages(prior: Prior, indices: np.ndarray, device: torch.device = CPU) -> list[bytes]:
    """Indices `[S, h, w]` → one entropy-coded payload per stage."""
    with exact_matmul(), serial_on_cpu(device):
        return encode_grid(_prior_on(prior, device), indices)


def decode_stages(
    prior: Prior, payloads: list[bytes], h: int, w: int, codebook_size: int, device: torch.device = CPU
) -> np.ndarray:
    """The first len(payloads) stages' payloads → indices `[n, h, w]` int64.

    Raises:
        ValueError: a payload that is corrupt, runs dry or holds data past its grid.
    """
    with exact_matmul(), serial_on_cpu(device):
        return decode_grid(_prior_on(prior, device), payloads, h, w, codebook_size)


def decode_tiles(
    prior: Prior,
    payloads: list[list[bytes]],
    h: int,
    w: int,
    codebook_size: int,
    tile: int,
    device: torch.device = CPU,
) -> np.ndarray:
    """Per stage, the payloads of the `[h, w]` grid's tiles of side `tile` (as `encode_tiles`
    writes them) → indices `[n, h, w]` int64 of the first n = len(payloads) stages.

    Raises:
        ValueError: a tile payload that is corrupt, runs dry or holds data past its tile.
    """
    indices = np.empty((len(payloads), h, w), dtype=np.int64)
    for number, (rows, cols) in enumerate(tiles(h, w, tile)):
        part = [stage[number] for stage in payloads]
        try:
            indices[:, rows, cols] = decode_stages(
                prior, part, rows.stop - rows.start, cols.stop - cols.start, codebook_size, device
            )
        except ValueError as error:
            where = (
                f"tile {number + 1} (indices {rows.start}..{rows.stop - 1} × {cols.start}..{cols.stop - 1}): "
                if h > tile or w > tile
                else ""
            )
            raise ValueError(where + str(error)) from error
    return indices


def _prior_on(prior: Prior, device: torch.device) -> Prior:
    """`prior` on `device`: both priors (static and context) are torch modules."""
    assert isinstance(prior, nn.Module)
    return on_device(prior, device)


@torch.no_grad()
def reconstruct(
    codec: VQCodec,
    indices: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    decoder: str = "fidelity",
    device: torch.device = CPU,
) -> np.ndarray:
    """Indices `[s, h, w]` → the decoded image, uint8 `[height, width, 3]` (≤ h·f × w·f: the
    stride padding is cropped away)."""
    model = on_device(codec, device)
    grid = torch.as_tensor(indices)
    return decode_pixels(
        lambda window: model.decode_indices(window, decoder),
        grid[None].to(device),
        height,
        width,
        codec.config.stride,
        margin_for(codec.config),
    )
