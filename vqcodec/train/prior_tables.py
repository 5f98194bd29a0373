"""Tables of the context prior fitted by counting on training grids rather than learned:
the stage-transition tables' starting point and the neighbour pair tables."""

from __future__ import annotations

import numpy as np
import torch

from vqcodec.entropy.context import NEIGHBOUR_OFFSETS, ContextPrior
from vqcodec.entropy.fixedpoint import INT8_MAX


@torch.no_grad()
def fit_transitions(prior: ContextPrior, grids: list[np.ndarray], smoothing: float = 20.0) -> None:
    """Start each stage-pair table at the log conditional frequencies p(token_s | token_{s-1})
    of the training grids, smoothed towards the stage's marginal; training refines them."""
    k = prior.config.codebook_size
    for s in range(1, prior.config.stages):
        pairs = np.concatenate([(g[s - 1].astype(np.int64) * k + g[s]).reshape(-1) for g in grids])
        joint = np.bincount(pairs, minlength=k * k).reshape(k, k).astype(np.float64)
        marginal = (joint.sum(axis=0) + 1) / (joint.sum() + k)
        conditional = (joint + smoothing * marginal) / (joint.sum(axis=1, keepdims=True) + smoothing)
        table = np.log(conditional)
        prior.transition[s - 1, :k] = torch.from_numpy(table - table.mean(axis=1, keepdims=True)).float()


def fit_neighbour_tables(prior: ContextPrior, grids: list[np.ndarray], smoothing: float = 4.0) -> None:
    """Fill the neighbour pair tables with the pointwise mutual information of adjacent
    tokens of each stage, counted on the training grids, as int8 logits. Counting is exact
    and takes seconds, where learning a K×K table by gradient would take far longer than the
    rest of the prior. Counts get add-`smoothing`: with about three pairs per cell the raw
    counts overfit, and add-4 beat add-1 on held-out grids."""
    k, scale = prior.config.codebook_size, 2.0**prior.config.logit_bits
    for s in range(prior.config.stages):
        stage_grids = [g[s].astype(np.int64) for g in grids]
        for d, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
            pairs = [offset_pairs(grid, grid, dy, dx) for grid in stage_grids]
            counts = np.bincount(np.concatenate([there * k + here for there, here in pairs]), minlength=k * k)
            joint = counts.reshape(k, k) + smoothing
            pmi = (
                np.log(joint * joint.sum()) - np.log(joint.sum(axis=1, keepdims=True)) - np.log(joint.sum(axis=0, keepdims=True))
            )
            table = np.clip(np.round(pmi * scale), -INT8_MAX, INT8_MAX).astype(np.int8)
            prior.neighbour[s, d] = torch.from_numpy(table)


def offset_pairs(context: np.ndarray, target: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat (context token at p+(dy, dx), target token at p) for every position p of the
    `[h, w]` grids where both exist."""
    h, w = target.shape
    here = target[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    there = context[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
    return there.reshape(-1), here.reshape(-1)
