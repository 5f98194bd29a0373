"""Indices that every decoder accepts: no stage ends in a longer run of free zeros than
`grid_coding.free_tail_allowance` permits.

A stage whose indices end (in coding order) with zeros codes them in no bits, and a decoder
refuses a long such tail, which it cannot tell from a header claiming more than its payload
holds (see `grid_coding`). Real images rarely produce one, but a flat region whose colour maps to
codeword 0 can: then the last index of that stage in coding order takes its nearest non-zero
codeword instead, and the later stages at that one position are re-picked from the new
residual (a loss too small to see, in one f×f cell).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .grid_coding import Prior, coding_order, free_tail_allowance, trailing_zeros


@torch.no_grad()
def limit_free_tails(indices: np.ndarray, latent: torch.Tensor, codebooks: Sequence[torch.Tensor], prior: Prior) -> np.ndarray:
    """indices `[S, h, w]` int of `latent` `[D, h, w]` (one `[K, D]` codebook per stage) →
    a copy in which no stage ends in more zeros than `free_tail_allowance(h * w)`."""
    stages, h, w = indices.shape
    indices = np.array(indices, dtype=np.int64)
    allowance = free_tail_allowance(h * w)
    for stage, order in enumerate(coding_order(prior, stages, h, w)):
        if trailing_zeros(indices[stage].reshape(-1)[order]) <= allowance:
            continue
        y, x = divmod(int(order[-1]), w)
        residual = latent[:, y, x].float()  # [D]
        for earlier in range(stage):
            residual = residual - codebooks[earlier][indices[earlier, y, x]]
        for later in range(stage, stages):
            distances = (codebooks[later].float() - residual).square().sum(dim=1)  # [K]
            if later == stage:
                distances[0] = torch.inf
            indices[later, y, x] = int(distances.argmin())
            residual = residual - codebooks[later][indices[later, y, x]]
    return indices
