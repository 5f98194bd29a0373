"""Where the networks run: device names → torch devices, per-device copies of loaded models,
and the precision settings that keep the context prior integer-exact on CUDA.

The convolutional encoder and decoders are float networks: on a GPU their outputs differ from
the CPU's in the last bits, which may move an index between two nearly equidistant codewords
but never breaks a stream. The context prior must compute the very same frequencies
everywhere; its sums are exact in float32 (`vqcodec.entropy.fixedpoint`), and TF32 is
switched off around it all the same, so no reduced-precision matmul can ever touch it.
On the CPU the prior's loops run on one thread (`serial_on_cpu`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar, cast

import torch
from torch import nn

DEVICES_HELP = "cpu (default), cuda, cuda:N, or auto (cuda when available)"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch device: None and "cpu" → CPU, "auto" → the current CUDA device when
    there is one (else CPU), "cuda"/"cuda:N" → that GPU.

    Raises:
        ValueError: an unknown device name, or CUDA asked for where it is not available.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}; use {DEVICES_HELP}") from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use {DEVICES_HELP}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    return resolved


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def on_device(module: ModuleT, device: torch.device) -> ModuleT:
    """`module` itself on the CPU, else its copy on `device`, made once per process: the
    loaded models are shared, so they are copied rather than moved."""
    return module if device.type == "cpu" else cast(ModuleT, _copy_to(module, device))  # a copy has the type of its original


@lru_cache(maxsize=8)
def _copy_to(module: nn.Module, device: torch.device) -> nn.Module:
    with torch.inference_mode(False):  # the copy keeps version counters, as the loaded original has
        return copy.deepcopy(module).to(device)


@contextmanager
def exact_matmul() -> Iterator[None]:
    """No TF32 in CUDA matmuls and convolutions inside the block (restored after)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


# Threads of the blocks inside `serial_on_cpu` (torch's setting is per process): how many run
# now, and the setting to restore when the last one ends.
_serial = threading.Lock()
_serial_blocks = 0
_threads_outside = 1


@contextmanager
def serial_on_cpu(device: torch.device) -> Iterator[None]:
    """torch on one thread inside the block when it runs on the CPU (restored after the last
    such block ends, so concurrent and nested blocks are safe).

    For the context prior's coding loop and the rate–distortion search: long chains of small
    operations, each a parallel region whose threads wait for one another at its end. On an
    idle machine a second thread makes them 15–40 % faster; on cores shared with other work
    every such wait may stall until the scheduler runs the other thread again, and the same
    loops ran 10–20 times slower (benchmarks/results/quantizer_load).
    """
    global _serial_blocks, _threads_outside
    if device.type != "cpu":
        yield
        return
    with _serial:
        if _serial_blocks == 0:
            _threads_outside = torch.get_num_threads()
            torch.set_num_threads(1)
        _serial_blocks += 1
    try:
        yield
    finally:
        with _serial:
            _serial_blocks -= 1
            if _serial_blocks == 0:
                torch.set_num_threads(_threads_outside)
