"""Encoder-side refinement of the latent: more quality from the same decoder, at encode time.

The encoder's latent is a one-shot guess of the latent that the decoder turns into the
image, and a poor one: gradient steps on the latent of one image, against the MSE of its
decoded pixels, reach far more than the encoder gives (experiments/latent-refinement). Here
the steps run through the quantizer (the nearest codeword at each stage, straight-through
gradient), so the refined latent is one that quantizes well, and the best iterate is kept.
The result is an ordinary latent: it is quantized and coded as any other, and every decoder
reads the stream unchanged. It costs encode time only (about three decoder passes per step).

Memory stays bounded: the grid is refined in windows of `WINDOW_TOKENS` a side, in order.
Each window's decoder input reaches the model's tiling margin past it (`tiling.margin_for`),
held fixed at the latent as it stands (the windows above and to the left already refined),
so that every pixel the window's tokens change lies inside what the loss sees: the margin is
past the decoder's reach.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vqcodec.devices import on_device
from vqcodec.imaging import to_padded_tensor
from vqcodec.model import VQCodec
from vqcodec.tiling import centre, margin_for, pixels_of, tiles, window

WINDOW_TOKENS = 128  # 1024 pixels: a Kodak image is one window
LEARNING_RATE = 0.01  # Adam on the latent, whose entries are of order 1


def refine_latent(
    codec: VQCodec, rgb: np.ndarray, latent: torch.Tensor, stages: int, steps: int, device: torch.device
) -> torch.Tensor:
    """The latent `[D,h,w]` (on the CPU) of image `rgb` (uint8 `[H,W,3]`, h = ceil(H/f)) after
    `steps` Adam steps per window against the MSE of the pixels decoded from its first `stages`
    stages; per window, the iterate with the lowest MSE (the encoder's own if none beats it)."""
    stride = codec.config.stride
    codec = on_device(codec, device)
    _, h, w = latent.shape
    margin = margin_for(codec.config)
    with torch.inference_mode(False), torch.enable_grad():
        refined = latent.detach().to(device).clone()
        for rows, cols in tiles(h, w, WINDOW_TOKENS):
            span_rows, span_cols = window(rows, h, margin), window(cols, w, margin)
            pixels = np.ascontiguousarray(pixels_of(rgb, span_rows, span_cols, stride))
            inner = (slice(None), centre(rows, span_rows), centre(cols, span_cols))
            target = to_padded_tensor(pixels, stride).to(device)[:, :, : pixels.shape[0], : pixels.shape[1]]
            refined[:, rows, cols] = _best_centre(codec, refined[:, span_rows, span_cols], inner, target, stages, steps)
    return refined.cpu()


def _best_centre(
    codec: VQCodec, span: torch.Tensor, inner: tuple[slice, ...], target: torch.Tensor, stages: int, steps: int
) -> torch.Tensor:
    """`span[inner]` `[D,rows,cols]` after `steps` Adam steps on it, the rest of `span` `[D,h,w]`
    fixed; the iterate whose decoded pixels are closest to `target` `[1,3,H,W]`."""
    quantizer, decoder = codec.quantizer, codec.decoders["fidelity"]
    height, width = target.shape[-2:]
    centre_latent = span[inner].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([centre_latent], lr=LEARNING_RATE)
    best, best_error = centre_latent.detach().clone(), float("inf")
    for step in range(steps + 1):
        latent = span.clone()
        latent[inner] = centre_latent
        latent = latent[None]
        # Straight-through: the decoder sees the nearest codewords, the gradient reaches the latent.
        quantized = latent + (quantizer.decode(quantizer.encode(latent.detach(), stages)) - latent).detach()
        error = F.mse_loss(decoder(quantized)[:, :, :height, :width], target)
        if (value := error.item()) < best_error:
            best, best_error = centre_latent.detach().clone(), value
        if step < steps:
            (centre_latent.grad,) = torch.autograd.grad(error, centre_latent)
            optimizer.step()
    return best
