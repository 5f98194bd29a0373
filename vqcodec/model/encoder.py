"""Image → latent grid. Drops to 1/4 resolution at once (pixel-unshuffle stem), which is what
makes the model cheap enough to train and run on a CPU."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import reach_tokens, residual_stack
from .config import CodecConfig

STEM_FACTOR = 4


def encoder_reach(config: CodecConfig) -> int:
    """Tokens past its own whose pixels a latent token depends on: the stem and two
    convolutions per fine block at 1/4, the downsampling and two per coarse block at 1/f."""
    return reach_tokens(1 + 2 * config.encoder_blocks[0], 1 + 2 * config.encoder_blocks[1], config.stride, STEM_FACTOR)


class Encoder(nn.Module):
    """Maps `[B,3,H,W]` float in [0,1] (H, W multiples of `stride`) to `[B,D,H/f,W/f]`."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        fine, coarse = config.width_fine, config.width_coarse
        coarse_factor = config.stride // STEM_FACTOR
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(STEM_FACTOR),
            nn.Conv2d(3 * STEM_FACTOR**2, fine, 3, padding=1),
        )
        self.fine = residual_stack(fine, config.encoder_blocks[0])
        self.down = nn.Sequential(
            nn.PixelUnshuffle(coarse_factor),
            nn.Conv2d(fine * coarse_factor**2, coarse, 3, padding=1),
        )
        self.coarse = residual_stack(coarse, config.encoder_blocks[1])
        self.to_latent = nn.Sequential(nn.SiLU(), nn.Conv2d(coarse, config.latent_dim, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image * 2.0 - 1.0)  # [B, fine, H/4, W/4]
        x = self.down(self.fine(x))  # [B, coarse, H/f, W/f]
        return self.to_latent(self.coarse(x))  # [B, D, H/f, W/f]
