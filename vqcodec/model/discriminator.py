"""PatchGAN discriminator for the VQ-GAN phase (training only; never part of an exported codec)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

MAX_WIDTH_FACTOR = 8


class PatchDiscriminator(nn.Module):
    """One real/fake logit per overlapping patch, pix2pix style (70×70 pixels for 3 layers).

    Spectral norm instead of batch norm: it keeps the hinge game stable, has no batch
    statistics to synchronise across data-parallel processes, and costs one power iteration.
    """

    def __init__(self, width: int = 32, layers: int = 3) -> None:
        """Args:
        width: channels of the first conv; doubled per layer up to 8× width.
        layers: stride-2 convs (each halves the resolution) before the stride-1 head.
        """
        super().__init__()
        if width < 1 or layers < 1:
            raise ValueError(f"width and layers must be ≥ 1, got {width}, {layers}")
        convs, channels = [], 3
        for i in range(layers + 1):
            out = width * min(2**i, MAX_WIDTH_FACTOR)
            convs.append(spectral_norm(nn.Conv2d(channels, out, 4, stride=2 if i < layers else 1, padding=1)))
            channels = out
        self.convs = nn.ModuleList(convs)
        self.to_logits = spectral_norm(nn.Conv2d(channels, 1, 4, padding=1))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`[B,3,H,W]` float in [0,1] (H, W ≥ 2^(layers+2)) → logits `[B,1,h,w]` and the
        activations after every conv (for feature matching), coarsest last."""
        x = image * 2.0 - 1.0
        features = []
        for conv in self.convs:
            x = self.act(conv(x))
            features.append(x)
        return self.to_logits(x), features
