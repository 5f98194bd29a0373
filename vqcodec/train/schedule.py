"""The learning-rate schedule both trainers use (the codec's and the context prior's): linear
warm-up, then cosine decay."""

from __future__ import annotations

import math
from typing import Protocol

import torch


class Schedule(Protocol):
    """What `learning_rate` reads of a config: a `TrainConfig` or a prior's `PriorTrainConfig`."""

    lr: float
    steps: int
    warmup_steps: int
    min_lr_ratio: float


def learning_rate(config: Schedule, step: int, peak: float | None = None) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio`·peak at `steps`; peak defaults to lr."""
    peak = config.lr if peak is None else peak
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return peak * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
