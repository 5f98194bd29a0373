"""Quantized latent grid → image. The mirror of the encoder, a little deeper, since decoding
quality is where the capacity pays off."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import reach_tokens, residual_stack
from .config import CodecConfig
from .encoder import STEM_FACTOR


def decoder_reach(config: CodecConfig) -> int:
    """Tokens past a pixel's own that it depends on: from_latent, two convolutions per coarse
    block and the upsampling at 1/f, two per fine block and to_pixels at 1/4."""
    return reach_tokens(1 + 2 * config.decoder_blocks[1], 2 + 2 * config.decoder_blocks[0], config.stride, STEM_FACTOR)


class Decoder(nn.Module):
    """Maps `[B,D,h,w]` to `[B,3,h*f,w*f]` (unclamped; ≈[0,1])."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        fine, coarse = config.width_fine, config.width_coarse
        coarse_factor = config.stride // STEM_FACTOR
        self.from_latent = nn.Conv2d(config.latent_dim, coarse, 3, padding=1)
        self.coarse = residual_stack(coarse, config.decoder_blocks[0])
        self.up = nn.Sequential(
            nn.SiLU(),
            nn.Conv2d(coarse, fine * coarse_factor**2, 3, padding=1),
            nn.PixelShuffle(coarse_factor),
        )
        self.fine = residual_stack(fine, config.decoder_blocks[1])
        self.to_pixels = nn.Sequential(
            nn.SiLU(),
            nn.Conv2d(fine, 3 * STEM_FACTOR**2, 3, padding=1),
            nn.PixelShuffle(STEM_FACTOR),
        )

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.coarse(self.from_latent(latent))  # [B, coarse, h, w]
        x = self.fine(self.up(x))  # [B, fine, 4h, 4w]
        return self.to_pixels(x) * 0.5 + 0.5  # [B, 3, f*h, f*w]
