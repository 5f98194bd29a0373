"""Building blocks shared by the encoder and the decoder.

No normalisation layers: on a CPU budget they cost a large share of the step time and the
pixel-unshuffle stem keeps activations well scaled without them.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """x + conv(act(conv(act(x)))), channels and resolution preserved."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.SiLU()
        # Start each block close to the identity so deep stacks train from step 0.
        nn.init.zeros_(self.conv2.weight)
        assert self.conv2.bias is not None  # Conv2d has a bias unless told otherwise
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


def residual_stack(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(count)])


def reach_tokens(fine_convs: int, coarse_convs: int, stride: int, fine_factor: int) -> int:
    """How many tokens past its own a network's output depends on, for a network with
    `fine_convs` 3×3 convolutions at 1/`fine_factor` resolution (each reaches one fine pixel
    further) and `coarse_convs` at 1/`stride` (one token each): a token spans
    stride/fine_factor fine pixels, and at its edge a fine pixel's reach crosses into the next
    token at once, hence the ceiling. Exact, not a bound (tests/test_tiling.py measures it)."""
    return coarse_convs + -(-fine_convs // (stride // fine_factor))
