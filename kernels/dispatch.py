"""Validates arguments and picks a backend for the nearest-codeword search."""

from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import torch

from .torch_nearest import nearest_codeword_torch

BACKENDS = ("auto", "triton", "torch")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _validate(x: torch.Tensor, codebook: torch.Tensor, backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(x, torch.Tensor) or not isinstance(codebook, torch.Tensor):
        raise TypeError(f"x and codebook must be torch tensors, got {type(x).__name__}, {type(codebook).__name__}")
    if x.dim() != 2 or codebook.dim() != 2:
        raise ValueError(f"x must be [N, D] and codebook [K, D], got {tuple(x.shape)} and {tuple(codebook.shape)}")
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"dimension mismatch: x has D={x.shape[1]}, codebook D={codebook.shape[1]}")
    if x.shape[1] == 0:
        raise ValueError("vectors have no components (D=0)")
    if codebook.shape[0] == 0:
        raise ValueError("codebook is empty (K=0)")
    if x.dtype not in FLOAT_DTYPES or codebook.dtype not in FLOAT_DTYPES:
        raise ValueError(f"x and codebook must be float32/float16/bfloat16, got {x.dtype}, {codebook.dtype}")
    if x.device != codebook.device:
        raise ValueError(f"x is on {x.device} but codebook is on {codebook.device}")
    # NaN distances compare differently in torch (propagated) and Triton (dropped by min/max),
    # so the two backends would pick different codewords; a NaN here is a bug upstream anyway.
    if not (torch.isfinite(x).all() and torch.isfinite(codebook).all()):
        raise ValueError("x and codebook must be finite (found NaN or inf)")


def interpreter_requested() -> bool:
    """Whether TRITON_INTERPRET asks triton to run kernels in its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


# Triton's interpreter reads a scalar argument used as a loop bound (the kernel's K) with int()
# on a one-element array, which numpy 2.4 turned from a warning into a TypeError
# (triton-lang/triton#9171). Triton 3.6 fails so; 3.8 and 3.9 carry the fix; 3.7, not
# checked, is refused like 3.6.
INTERPRETER_FIXED_TRITON = "3.8"
INTERPRETER_BREAKING_NUMPY = "2.4"


def _release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as "3.6.0" or "2.4.0rc1"."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"unreadable version {version!r}")
    return int(match[1]), int(match[2])


def _interpreter_unusable_reason(triton_version: str, numpy_version: str) -> str | None:
    """Why the interpreter of that Triton cannot run the kernel under that numpy, or None."""
    if _release(triton_version) >= _release(INTERPRETER_FIXED_TRITON):
        return None
    if _release(numpy_version) < _release(INTERPRETER_BREAKING_NUMPY):
        return None
    return (
        f"the interpreter of Triton {triton_version} fails under numpy {numpy_version} "
        f"(triton-lang/triton#9171); install triton>={INTERPRETER_FIXED_TRITON} or numpy<{INTERPRETER_BREAKING_NUMPY}"
    )


def triton_unavailable_reason(device: torch.device) -> str | None:
    """Why the Triton kernel cannot run on `device`, or None when it can."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'vqcodec[gpu]')"
    if device.type == "cuda":
        return None
    # The interpreter runs kernels on CPU tensors; without it Triton needs CUDA tensors.
    if interpreter_requested():
        # The module's own version, not the distribution's: torch's nightlies ship it as
        # pytorch-triton. The kernel imports it next anyway.
        import triton

        return _interpreter_unusable_reason(triton.__version__, np.__version__)
    return f"the Triton kernel needs CUDA tensors (got {device}), or TRITON_INTERPRET=1 for CPU tensors"


def _resolve(backend: str, device: torch.device) -> str:
    """The backend that will run: "auto" means Triton on CUDA when it is installed."""
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_unavailable_reason(device) is None else "torch"
    if backend == "triton":
        reason = triton_unavailable_reason(device)
        if reason is not None:
            raise RuntimeError(f"backend='triton' is unavailable: {reason}")
    return backend


@torch.no_grad()
def nearest_codeword(x: torch.Tensor, codebook: torch.Tensor, *, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest codeword (squared Euclidean distance) for each row of x.

    Args:
        x: `[N, D]` float32/float16/bfloat16, N ≥ 0, D ≥ 1.
        codebook: `[K, D]` float32/float16/bfloat16, K ≥ 1, same device as x.
        backend: "auto" (fused Triton kernel for CUDA tensors when triton is installed, the
            chunked torch path otherwise), "triton" or "torch" to force one.

    Returns:
        indices `[N]` int64 in [0, K) (ties → lowest index) and squared distances `[N]`
        float32 ≥ 0, accumulated in float32. Neither carries gradients.

    Raises:
        TypeError, ValueError: bad shapes, dtypes or devices, or NaN or inf values.
        RuntimeError: backend="triton" without triton, or without CUDA tensors (unless
            TRITON_INTERPRET=1 and the installed Triton's interpreter runs under the installed
            numpy).
    """
    _validate(x, codebook, backend)
    if _resolve(backend, x.device) == "triton":
        from .triton_nearest import nearest_codeword_triton  # triton is an optional extra

        return nearest_codeword_triton(x, codebook)
    return nearest_codeword_torch(x, codebook)
