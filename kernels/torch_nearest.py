"""CPU/any-device path: chunked ‖c‖² − 2·x·cᵀ and argmin, never the full N×K matrix."""
from __future__ import annotations

import torch

# Keep the [chunk, K] distance temporary at about this size: large enough to keep the
# matmul efficient, small enough to stay in cache-friendly, bounded memory.
CHUNK_BYTES = 4 * 1024 * 1024


def nearest_codeword_torch(
    x: torch.Tensor, codebook: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codeword by squared Euclidean distance, computed in float32.

    Args:
        x: `[N, D]` vectors.
        codebook: `[K, D]` codewords.

    Returns:
        indices `[N]` int64 (ties resolve to the lowest index) and squared distances `[N]`
        float32.
    """
    x32 = x.float()
    c32 = codebook.float()
    n, k = x32.shape[0], c32.shape[0]
    indices = torch.empty(n, dtype=torch.int64, device=x.device)
    distances = torch.empty(n, dtype=torch.float32, device=x.device)
    codeword_norms = (c32 * c32).sum(dim=1)  # [K]
    chunk = max(1, CHUNK_BYTES // (4 * k))
    for start in range(0, n, chunk):
        rows = x32[start : start + chunk]
        # ‖c‖² − 2·x·cᵀ: the ‖x‖² term is constant per row, so it is added after the argmin.
        partial = torch.addmm(codeword_norms, rows, c32.t(), beta=1.0, alpha=-2.0)  # [n, K]
        best, best_index = partial.min(dim=1)
        indices[start : start + chunk] = best_index
        distances[start : start + chunk] = (best + (rows * rows).sum(dim=1)).clamp_min_(0.0)
    return indices, distances
