"""Plain-torch path: chunked ‖c‖² − 2·x·cᵀ and argmin, never the full N×K matrix.

It serves CPU tensors (and CUDA tensors when triton is not installed).
"""

from __future__ import annotations

import torch

# Size of the [chunk, K] float32 distance temporary. On the CPU a chunk that stays in the
# last-level cache lets the argmin pass read what the matmul just wrote; the value is the
# fastest of those timed by `benchmarks/kernel.py` (results/kernel). On a GPU small chunks
# would cost one launch each, so the bound there is larger, still far below N×K.
CPU_CHUNK_BYTES = 2 * 1024 * 1024
GPU_CHUNK_BYTES = 256 * 1024 * 1024


def chunk_rows(k: int, device: torch.device, chunk_bytes: int | None = None) -> int:
    """Rows of x per chunk so that the `[rows, K]` float32 temporary fits `chunk_bytes`."""
    if chunk_bytes is None:
        chunk_bytes = CPU_CHUNK_BYTES if device.type == "cpu" else GPU_CHUNK_BYTES
    return max(1, chunk_bytes // (4 * k))


def nearest_codeword_torch(
    x: torch.Tensor, codebook: torch.Tensor, *, chunk_bytes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codeword by squared Euclidean distance, computed in float32.

    Args:
        x: `[N, D]` float vectors.
        codebook: `[K, D]` float codewords, K ≥ 1, same device as x.
        chunk_bytes: bound on the distance temporary; None picks the per-device default.

    Returns:
        indices `[N]` int64 in [0, K) (ties resolve to the lowest index) and squared
        distances `[N]` float32 ≥ 0.
    """
    n, k = x.shape[0], codebook.shape[0]
    c32 = codebook.float()
    codeword_norms = (c32 * c32).sum(dim=1)  # [K]
    c32_t = c32.t()
    indices = torch.empty(n, dtype=torch.int64, device=x.device)
    distances = torch.empty(n, dtype=torch.float32, device=x.device)
    rows_per_chunk = chunk_rows(k, x.device, chunk_bytes)
    # One buffer reused by every chunk: no allocator traffic inside the loop.
    buffer = torch.empty(min(n, rows_per_chunk), k, dtype=torch.float32, device=x.device)
    for start in range(0, n, rows_per_chunk):
        rows = x[start : start + rows_per_chunk].float()  # converts one chunk at a time
        partial = buffer[: rows.shape[0]]
        # ‖c‖² − 2·x·cᵀ: the ‖x‖² term is the same for every codeword of a row, so it is
        # added after the argmin; torch's min returns the first index among equal values.
        torch.addmm(codeword_norms, rows, c32_t, beta=1.0, alpha=-2.0, out=partial)  # [n, K]
        best = distances[start : start + rows.shape[0]]
        torch.min(partial, dim=1, out=(best, indices[start : start + rows.shape[0]]))
        best.add_((rows * rows).sum(dim=1)).clamp_min_(0.0)
    return indices, distances
