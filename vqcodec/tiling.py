"""The encoder and the decoder over large images in overlapping tiles: memory bounded at any size.

Both networks are convolutional without normalisation layers, so a token depends only on
the pixels around it and a pixel only on the tokens around it, out to the network's reach
(`encoder_reach`, `decoder_reach`: 7 and 11 tokens for the shipped model, 10 and 14 for
the wider networks of the GPU recipe). Each tile is computed from a window that reaches a
margin past both (`margin_for` the model) on every side, and only its centre is kept: the
result equals the whole-image pass up to float rounding, with no seam, and the token grid
is the one the whole-image encoder gives. An image of at most `TILE_TOKENS` tokens a side
runs in one piece, exactly as before.

The same tiles cut the grid for the entropy coder (`coding.encode_tiles`, format version 3),
so that no step of encoding or decoding holds more than a tile's worth of work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from vqcodec.imaging import to_padded_tensor, to_uint8
from vqcodec.model import CodecConfig
from vqcodec.model.decoder import decoder_reach
from vqcodec.model.encoder import encoder_reach

TILE_TOKENS = 256  # 2048 pixels at stride 8: a window's activations stay near 0.4 GB


def margin_for(config: CodecConfig) -> int:
    """Tokens a window reaches past its tile for a model: one past the farther of its
    networks' reaches, the token of slack the shipped model's files were written with (12)."""
    return max(encoder_reach(config), decoder_reach(config)) + 1


def tiles(h: int, w: int, tile: int) -> Iterator[tuple[slice, slice]]:
    """(rows, columns) of the token grid `[h, w]` in tiles of at most `tile` a side."""
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            yield slice(top, min(top + tile, h)), slice(left, min(left + tile, w))


def window(part: slice, size: int, margin: int) -> slice:
    """`part` of an axis of `size` widened by `margin` on both sides, within the axis."""
    return slice(max(part.start - margin, 0), min(part.stop + margin, size))


def pixels_of(rgb: np.ndarray, rows: slice, cols: slice, stride: int) -> np.ndarray:
    """The pixels `[H',W',3]` of the tokens `rows` × `cols` of `rgb`'s grid: a view, cut short
    at the image's bottom and right edges (where the grid covers the stride padding)."""
    return rgb[rows.start * stride : rows.stop * stride, cols.start * stride : cols.stop * stride]


def centre(part: slice, span: slice) -> slice:
    """Where `part` lies inside `span` (a `window` around it), in the span's coordinates."""
    return slice(part.start - span.start, part.stop - span.start)


@torch.no_grad()
def latent_tiles(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    rgb: np.ndarray,
    stride: int,
    device: torch.device,
    margin: int,
    tile: int | None = None,
) -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """The encoder's latent of an image, one tile of the token grid at a time.

    Args:
        encoder: padded pixels `[1,3,H',W']` in [0,1] → latent `[1,D,H'/f,W'/f]`.
        rgb: the image, uint8 `[H,W,3]`: only a window of it is ever converted to float.
        stride: f, the encoder's downsampling.
        margin: tokens each window reaches past its tile (`margin_for` the model).
        tile: tile side in tokens (default `TILE_TOKENS`).

    Yields:
        (rows, columns) of the tile in the grid `[ceil(H/f), ceil(W/f)]` (`tiles` order) and
        its latent, float `[1,D,rows,columns]` on the CPU; one tile, the whole image computed
        in one piece, where the grid fits one.
    """
    height, width = rgb.shape[:2]
    h, w, tile = -(-height // stride), -(-width // stride), tile or TILE_TOKENS
    if h <= tile and w <= tile:
        yield slice(0, h), slice(0, w), encoder(to_padded_tensor(rgb, stride).to(device)).cpu()
        return
    for rows, cols in tiles(h, w, tile):
        window_rows, window_cols = window(rows, h, margin), window(cols, w, margin)
        # A window at the bottom or right edge ends inside the image's stride padding, which
        # `to_padded_tensor` replicates from the edge exactly as for the whole image.
        pixels = pixels_of(rgb, window_rows, window_cols, stride)
        out = encoder(to_padded_tensor(np.ascontiguousarray(pixels), stride).to(device))  # [1, D, rows+margins, cols+margins]
        yield rows, cols, out[:, :, centre(rows, window_rows), centre(cols, window_cols)].cpu()


@torch.no_grad()
def encode_latent(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    rgb: np.ndarray,
    stride: int,
    device: torch.device,
    margin: int,
    tile: int | None = None,
) -> torch.Tensor:
    """The encoder's latent of a whole image, float `[1,D,ceil(H/f),ceil(W/f)]` on the CPU,
    assembled from `latent_tiles` (same arguments)."""
    h, w = -(-rgb.shape[0] // stride), -(-rgb.shape[1] // stride)
    latent = None
    for rows, cols, part in latent_tiles(encoder, rgb, stride, device, margin, tile):
        if latent is None:
            latent = torch.empty((1, part.shape[1], h, w), dtype=part.dtype)
        latent[:, :, rows, cols] = part
    assert latent is not None  # every image has at least one tile
    return latent


@torch.no_grad()
def decode_pixels(
    decoder: Callable[[torch.Tensor], torch.Tensor],
    indices: torch.Tensor,
    height: int,
    width: int,
    stride: int,
    margin: int,
    tile: int | None = None,
) -> np.ndarray:
    """The decoded image, tile by tile where it is large.

    Args:
        decoder: indices `[1,s,h',w']` → pixels `[1,3,h'f,w'f]` in [0,1].
        indices: `[1,s,h,w]` int64, on the decoder's device.
        height, width: the image's size (≤ h·f, w·f): the stride padding is cropped away.
        margin, tile: as in `latent_tiles`.

    Returns:
        uint8 `[height,width,3]`.
    """
    _, _, h, w = indices.shape
    tile = tile or TILE_TOKENS
    if h <= tile and w <= tile:
        return to_uint8(decoder(indices)[0, :, :height, :width].cpu())
    out = np.empty((height, width, 3), dtype=np.uint8)
    for rows, cols in tiles(h, w, tile):
        window_rows, window_cols = window(rows, h, margin), window(cols, w, margin)
        pixels = decoder(indices[:, :, window_rows, window_cols])[0].cpu()  # [3, window h·f, window w·f]
        top, left = rows.start * stride, cols.start * stride
        bottom, right = min(rows.stop * stride, height), min(cols.stop * stride, width)
        y, x = (top - window_rows.start * stride), (left - window_cols.start * stride)
        out[top:bottom, left:right] = to_uint8(pixels[:, y : y + bottom - top, x : x + right - left])
    return out
