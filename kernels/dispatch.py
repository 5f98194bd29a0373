"""Validates arguments and picks a backend for the nearest-codeword search."""
from __future__ import annotations

import torch

from .torch_nearest import nearest_codeword_torch

BACKENDS = ("auto", "torch")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _validate(x: torch.Tensor, codebook: torch.Tensor, backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if x.dim() != 2 or codebook.dim() != 2:
        raise ValueError(
            f"x must be [N, D] and codebook [K, D], got {tuple(x.shape)} and {tuple(codebook.shape)}"
        )
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"dimension mismatch: x has D={x.shape[1]}, codebook D={codebook.shape[1]}")
    if codebook.shape[0] == 0:
        raise ValueError("codebook is empty (K=0)")
    if x.dtype not in FLOAT_DTYPES or codebook.dtype not in FLOAT_DTYPES:
        raise ValueError(f"x and codebook must be float32/float16/bfloat16, got {x.dtype}, {codebook.dtype}")
    if x.device != codebook.device:
        raise ValueError(f"x is on {x.device} but codebook is on {codebook.device}")


def nearest_codeword(
    x: torch.Tensor, codebook: torch.Tensor, *, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest codeword for each row of x.

    Args:
        x: `[N, D]` float32/float16/bfloat16.
        codebook: `[K, D]`, same device as x.
        backend: "auto" or "torch".

    Returns:
        indices `[N]` int64 (ties → lowest index) and squared distances `[N]` float32.
    """
    _validate(x, codebook, backend)
    return nearest_codeword_torch(x, codebook)
