"""Fused Triton nearest-codeword kernel: distances and argmin in one pass, no N×K matrix.

Each program owns BLOCK_N rows of x and walks the codebook BLOCK_K codewords at a time,
computing ‖c‖² − 2·x·cᵀ with `tl.dot` (fp32 accumulation) and keeping a running minimum
and argmin per row. Only `[N]` indices and `[N]` distances ever reach global memory.

This module imports triton at load time; `dispatch.py` imports it only when the Triton
backend is requested, so the package works without triton installed.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import interpreter_requested

# triton decides at decoration time whether kernels run in its CPU interpreter, so the
# mode is read once here, next to the decorators, and the launcher follows the same answer.
INTERPRETED = interpreter_requested()

# `tl.dot` needs every tile side to be at least 16 on a GPU.
MIN_BLOCK = 16
# One config for the interpreter: it runs programs one at a time, so fewer, larger tiles
# are faster there, and autotuning (which times every config) would take minutes.
INTERPRETER_BLOCKS = {"BLOCK_N": 128, "BLOCK_K": 256, "BLOCK_D": 64}


def padded_dim(d: int) -> int:
    """Smallest power of two ≥ max(d, 16): `tl.arange` and `tl.dot` need it."""
    return max(MIN_BLOCK, triton.next_power_of_2(d))


@triton.jit
def _nearest_kernel(
    # Pointers: x [N, D], codebook [K, D], codeword norms [K] fp32; outputs [N] int64 / fp32.
    x_ptr,
    codebook_ptr,
    norms_ptr,
    index_ptr,
    distance_ptr,
    # Sizes; N_BUCKET (N rounded up to a power of two) is only the autotuner's key.
    N,
    K,
    D,
    N_BUCKET,
    # Strides, in elements.
    stride_xn,
    stride_xd,
    stride_ck,
    stride_cd,
    # Tile sizes (compile-time).
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    # 64-bit offsets: N·D can pass 2^31 elements for large batches.
    x_rows = x_ptr + rows.to(tl.int64)[:, None] * stride_xn
    dims = tl.arange(0, BLOCK_D)
    best = tl.full((BLOCK_N,), float("inf"), tl.float32)
    best_index = tl.zeros((BLOCK_N,), tl.int32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        col_ok = cols < K
        c_cols = codebook_ptr + cols.to(tl.int64)[None, :] * stride_ck
        dot = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
        for d0 in range(0, D, BLOCK_D):
            d = d0 + dims
            d_ok = d < D
            x = tl.load(x_rows + d[None, :] * stride_xd, mask=row_ok[:, None] & d_ok[None, :], other=0.0)
            c = tl.load(c_cols + d[:, None] * stride_cd, mask=d_ok[:, None] & col_ok[None, :], other=0.0)
            if DOT_FP32:  # ieee: no TF32 rounding, so results match torch fp32
                dot = tl.dot(x.to(tl.float32), c.to(tl.float32), dot, input_precision="ieee")
            else:  # fp16/bf16 products are exact in the fp32 accumulator: tensor cores lose nothing
                dot = tl.dot(x, c, dot)  # [BLOCK_N, BLOCK_K]
        # Padding columns get +inf, so they never win and never tie with a real codeword.
        norms = tl.load(norms_ptr + cols, mask=col_ok, other=float("inf"))
        partial = norms[None, :] - 2.0 * dot
        tile_best = tl.min(partial, axis=1)
        # Lowest index among equal minima inside the tile...
        tile_index = tl.min(tl.where(partial == tile_best[:, None], cols[None, :], K), axis=1)
        # ...and across tiles only a strictly smaller distance replaces, so earlier tiles win ties.
        better = tile_best < best
        best = tl.where(better, tile_best, best)
        best_index = tl.where(better, tile_index, best_index)
    x_norm = tl.zeros((BLOCK_N,), tl.float32)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + dims
        x = tl.load(x_rows + d[None, :] * stride_xd, mask=row_ok[:, None] & (d < D)[None, :], other=0.0)
        x = x.to(tl.float32)
        x_norm += tl.sum(x * x, axis=1)
    # Rounding can push a near-zero distance below zero; a squared distance is never negative.
    distance = tl.maximum(best + x_norm, 0.0)
    tl.store(index_ptr + rows, best_index.to(tl.int64), mask=row_ok)
    tl.store(distance_ptr + rows, distance, mask=row_ok)


def _autotune_configs() -> list[triton.Config]:
    """Tile sizes and launch settings the autotuner times, per (N bucket, K, D)."""
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_D": bd}, num_warps=warps, num_stages=stages)
        for bn in (64, 128)
        for bk in (64, 128, 256)
        for bd in (16, 32, 64)
        for warps, stages in ((4, 2), (8, 3))
        if bn * bk <= 128 * 128 or warps == 8
    ]


def _prune_configs(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop configs whose D tile is wider than the padded D: they would only load padding."""
    d_pad = padded_dim(named_args["D"])
    kept = [c for c in configs if c.kwargs["BLOCK_D"] <= d_pad]
    return kept or configs[:1]


_nearest_kernel_tuned = triton.autotune(
    configs=_autotune_configs(),
    # Keyed on N's power-of-two bucket, not N: every image size would otherwise re-time all configs.
    key=["N_BUCKET", "K", "D"],
    prune_configs_by={"early_config_prune": _prune_configs},
)(_nearest_kernel)


def nearest_codeword_triton(
    x: torch.Tensor, codebook: torch.Tensor, *, blocks: dict[str, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codeword with the fused kernel; arguments are validated by the caller.

    Args:
        x: `[N, D]` float32/float16/bfloat16, on a CUDA device (or on the CPU when
            TRITON_INTERPRET=1 was set before this module was imported).
        codebook: `[K, D]`, K ≥ 1, same device as x.
        blocks: fixed tile sizes `{"BLOCK_N", "BLOCK_K", "BLOCK_D"}` (powers of two ≥ 16)
            instead of the autotuned ones; tests use it to put ties across tile borders.

    Returns:
        indices `[N]` int64 in [0, K) (ties → lowest index) and squared distances `[N]`
        float32 ≥ 0.
    """
    if x.device.type != "cuda" and not INTERPRETED:
        raise RuntimeError(
            f"the Triton kernel needs CUDA tensors (got {x.device}); TRITON_INTERPRET=1 must be set "
            "before the kernel module is first imported to run it on CPU tensors"
        )
    if x.dtype != codebook.dtype:  # tl.dot wants one dtype; fp32 holds fp16 and bf16 exactly
        x, codebook = x.float(), codebook.float()
    # Contiguous rows keep the column offsets (d·stride) small: the kernel widens only row offsets to 64 bits.
    x, codebook = x.contiguous(), codebook.contiguous()
    n, d = x.shape
    k = codebook.shape[0]
    indices = torch.empty(n, dtype=torch.int64, device=x.device)
    distances = torch.empty(n, dtype=torch.float32, device=x.device)
    if n == 0:
        return indices, distances
    codebook32 = codebook.float()
    norms = (codebook32 * codebook32).sum(dim=1).contiguous()  # [K]
    args = (
        x,
        codebook,
        norms,
        indices,
        distances,
        n,
        k,
        d,
        triton.next_power_of_2(n),
        x.stride(0),
        x.stride(1),
        codebook.stride(0),
        codebook.stride(1),
    )
    # The interpreter's dot multiplies the raw uint16 storage of bf16, so there bf16 tiles
    # are widened to fp32 first (exact); on a GPU they go to the tensor cores as they are.
    dot_fp32 = x.dtype == torch.float32 or (INTERPRETED and x.dtype == torch.bfloat16)
    if blocks is None and not INTERPRETED:
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),)  # noqa: E731
        _nearest_kernel_tuned[grid](*args, DOT_FP32=dot_fp32)
        return indices, distances
    blocks = dict(blocks or INTERPRETER_BLOCKS)
    blocks["BLOCK_D"] = min(blocks["BLOCK_D"], padded_dim(d))
    _nearest_kernel[(triton.cdiv(n, blocks["BLOCK_N"]),)](*args, DOT_FP32=dot_fp32, **blocks)
    return indices, distances
