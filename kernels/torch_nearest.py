"""Plain-torch path: chunked ‖c‖² − 2·x·cᵀ and argmin, never the full N×K matrix.

It serves CPU tensors (and CUDA tensors when triton is not installed).
"""

from __future__ import annotations

import torch

# Bounds on the [chunk, K] float32 distance temporary. With one thread a chunk that stays in
# the cache lets the argmin pass read what the matmul just wrote: 2 MiB is the fastest of the
# sizes timed by `benchmarks/kernel.py` (results/kernel), and larger chunks lose that.
CPU_CHUNK_BYTES = 2 * 1024 * 1024
# With several threads every chunk's addmm and min is a parallel region ending in a barrier,
# and on cores shared with another multi-threaded process (a second codec, a test suite) each
# barrier waits for a thread the scheduler has set aside. Hundreds of small regions then made
# the search several times slower than one cdist; chunks that give each thread tens of MiB
# of work keep it faster than cdist under such load, for a little of its idle speed
# (`benchmarks/quantizer_load.py`, results/quantizer_load, and docs/results.md).
CPU_CHUNK_BYTES_PER_THREAD = 32 * 1024 * 1024
# On a GPU small chunks would cost one launch each, so the bound there is larger, still far
# below N×K; it also caps the per-thread bound on many-core CPUs.
GPU_CHUNK_BYTES = 256 * 1024 * 1024


def default_chunk_bytes(device: torch.device, threads: int) -> int:
    """Bound on the distance temporary for a search on `device` with `threads` CPU threads."""
    if device.type != "cpu":
        return GPU_CHUNK_BYTES
    if threads <= 1:
        return CPU_CHUNK_BYTES
    return min(threads * CPU_CHUNK_BYTES_PER_THREAD, GPU_CHUNK_BYTES)


def chunk_rows(k: int, device: torch.device, chunk_bytes: int | None = None) -> int:
    """Rows of x per chunk so that the `[rows, K]` float32 temporary fits `chunk_bytes`
    (None: `default_chunk_bytes` for torch's current thread count)."""
    if chunk_bytes is None:
        chunk_bytes = default_chunk_bytes(device, torch.get_num_threads())
    return max(1, chunk_bytes // (4 * k))


def nearest_codeword_torch(
    x: torch.Tensor, codebook: torch.Tensor, *, chunk_bytes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codeword by squared Euclidean distance, computed in float32.

    Args:
        x: `[N, D]` float vectors.
        codebook: `[K, D]` float codewords, K ≥ 1, same device as x.
        chunk_bytes: bound on the distance temporary; None picks the default for the
            device and torch's thread count (`default_chunk_bytes`).

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
