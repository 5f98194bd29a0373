"""Static per-stage prior: integer symbol frequencies learned from training data.

Frequencies are integers, so the probabilities handed to the coder (freq / total, one exact
IEEE division each) are bit-identical on every machine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

# Total of each stage's frequency table; every symbol keeps at least 1 so none is unencodable.
FREQUENCY_TOTAL = 1 << 20


class StaticPrior(nn.Module):
    """Holds `frequencies` `[S, K]` int64, one order-0 distribution per residual stage."""

    frequencies: torch.Tensor  # [S, K] int64

    def __init__(self, stages: int, codebook_size: int) -> None:
        super().__init__()
        uniform = torch.full((stages, codebook_size), FREQUENCY_TOTAL // codebook_size, dtype=torch.int64)
        self.register_buffer("frequencies", uniform)

    @torch.no_grad()
    def fit(self, counts: torch.Tensor) -> None:
        """Bake observed symbol counts `[S, K]` into integer frequencies (≥1 each)."""
        counts = counts.double()
        k = counts.shape[1]
        scaled = (counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)) * (FREQUENCY_TOTAL - k)
        self.frequencies.copy_(scaled.floor().long() + 1)

    def groups(self, stages: int, h: int, w: int) -> list[tuple[int, np.ndarray]]:
        """Coding order: one group per stage covering the whole `[h, w]` grid."""
        return [(stage, np.ones((h, w), dtype=bool)) for stage in range(stages)]

    def group_coder(self, tokens: np.ndarray, known: np.ndarray, stage: int) -> Callable[[np.ndarray], np.ndarray]:
        """Frequencies for any positions of stage `stage`: one `[K]` int64 row shared by all
        of them (context is ignored)."""
        row = self.frequencies[stage].cpu().numpy().astype(np.int64)
        return lambda positions: row
