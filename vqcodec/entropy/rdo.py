"""Rate–distortion-optimised residual quantization against the coding prior.

The plain encoder gives every position the nearest codeword of each stage. This one picks
argmin ‖r − c‖² + λ_s · bits(c), where bits(c) is the code length the prior gives c there,
given every index chosen before it in the prior's coding order: where a few codewords are
nearly as close, it takes the one its context makes cheap. The decoder is unchanged; the
stream simply holds other indices.

Groups are visited in the prior's order, so the frequencies seen here are those the entropy
coder will use. Stage s is chosen from stages < s only, so a file's prefixes keep their
meaning. An index also changes the code lengths of the same-stage neighbours coded after
it; with a prior that reads neighbours through pair tables (the context prior), the cost
counts that too, taking those neighbours to be their nearest codewords. The tables hold
pointwise mutual information, which leaves a neighbour's normaliser about unchanged, so the
change in its code length is the pair term alone; and the tables are symmetric, so the
term is the prior's own `neighbour_logits` read from the other side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from vqcodec.kernels import nearest_codeword

from .context import ContextPrior
from .grid_coding import CHUNK_ROWS, Prior, position_blocks


def code_lengths(frequencies: np.ndarray) -> torch.Tensor:
    """Integer frequencies `[n, K]` (or one shared row `[K]`) → bits per symbol, float32."""
    table = torch.from_numpy(np.atleast_2d(np.asarray(frequencies, dtype=np.float64)))
    return (table.sum(dim=1, keepdim=True).log2() - table.log2()).float()


@torch.no_grad()
def quantize_for_rate(
    latent: torch.Tensor,
    codebooks: Sequence[torch.Tensor],
    prior: Prior,
    lambdas: Sequence[float],
    chunk_rows: int = CHUNK_ROWS,
    lookahead: bool = True,
) -> np.ndarray:
    """Residual quantization of one latent grid, each index weighed by its code length.

    Args:
        latent: `[D, h, w]` float, on the CPU (as the codebooks).
        codebooks: one `[K, D]` codebook per stage to code, in stage order.
        prior: the prior that will code the indices (`groups`, `group_coder`).
        lambdas: λ_s ≥ 0 per stage, relative: one bit weighs λ_s times the mean squared
            error that the nearest codewords of stage s leave in this latent; 0 gives the
            nearest codeword at that stage.
        chunk_rows: positions scored at once (bounds memory at about 40·K bytes per row, as
            in the entropy coder).
        lookahead: count what an index saves the neighbours coded after it (False: only
            its own code length, for measuring what the term buys).

    Returns:
        indices `[S, h, w]` int64, S = len(codebooks).
    """
    if len(lambdas) != len(codebooks) or any(not value >= 0 for value in lambdas):
        raise ValueError(f"need one λ ≥ 0 per stage ({len(codebooks)}), got {list(lambdas)}")
    dim, h, w = latent.shape
    residual = latent.permute(1, 2, 0).reshape(-1, dim).float().clone()  # [h*w, D], updated in place
    tokens = np.zeros((len(codebooks), h, w), dtype=np.int64)
    known = np.zeros(tokens.shape, dtype=bool)
    order = prior.groups(len(codebooks), h, w)
    for stage, (codebook, relative) in enumerate(zip(codebooks, lambdas)):
        codebook = codebook.float()
        nearest, squared_errors = nearest_codeword(residual, codebook)  # the plain encoder's choice
        # Scaled by the error left at this stage: PSNR is logarithmic in the error, so a
        # smooth image with small residuals must trade less error per bit than a busy one.
        weight = relative * float(squared_errors.mean()) if squared_errors.numel() else 0.0
        if weight == 0:
            tokens[stage] = nearest.view(h, w).numpy()
        else:
            groups = [mask for s, mask in order if s == stage]
            distortion = _squared_distances(residual, codebook)
            search_stage(prior, tokens, known, stage, groups, distortion, nearest.numpy(), weight, chunk_rows, lookahead)
        known[stage] = True
        residual -= codebook[torch.from_numpy(tokens[stage].reshape(-1))]
    return tokens


def _squared_distances(residual: torch.Tensor, codebook: torch.Tensor) -> Callable[[np.ndarray], torch.Tensor]:
    """Squared distance from the residual at flat positions to every codeword, `[n, K]`, up to
    ‖r‖², which is the same for every candidate and so left out."""
    squared_norms = codebook.square().sum(dim=1)  # [K]

    def distances(block: np.ndarray) -> torch.Tensor:
        return torch.addmm(squared_norms, residual[torch.from_numpy(block)], codebook.T, alpha=-2.0)

    return distances


def search_stage(
    prior: Prior,
    tokens: np.ndarray,
    known: np.ndarray,
    stage: int,
    groups: list[np.ndarray],
    distortion: Callable[[np.ndarray], torch.Tensor],
    nearest: np.ndarray,
    weight: float,
    chunk_rows: int = CHUNK_ROWS,
    lookahead: bool = True,
) -> None:
    """Choose stage `stage` of `tokens` group by group (earlier stages known), in place.

    At each position of `groups` (the prior's masks for this stage, in coding order) it takes
    the index minimising `distortion` (flat positions → a fresh `[n, K]` tensor) plus `weight`
    times its code length; `nearest` `[h*w]` is what the neighbours chosen later are taken to
    hold. Public so that a probe can search under another distortion.
    """
    h, w = tokens.shape[1:]
    flat_tokens = tokens[stage].reshape(-1)  # a view: writes land in `tokens`
    pending = np.ones((h, w), dtype=bool)  # positions of this stage not chosen yet
    for mask in groups:
        pending &= ~mask
        frequencies_at = prior.group_coder(tokens, known, stage)
        saved_later = _later_neighbour_bits(prior, stage, nearest.reshape(h, w), pending) if lookahead else None
        for block in position_blocks(mask, chunk_rows):
            rate = code_lengths(frequencies_at(block))
            if saved_later is not None:
                rate = rate - saved_later(block)
            flat_tokens[block] = distortion(block).add_(rate, alpha=weight).argmin(dim=1).numpy()
        known[stage] |= mask


def _later_neighbour_bits(
    prior: Prior, stage: int, guess: np.ndarray, pending: np.ndarray
) -> Callable[[np.ndarray], torch.Tensor] | None:
    """Bits each candidate at a position saves its same-stage neighbours still `pending`
    (taken to hold `guess` `[h, w]`), as a function of flat positions → `[n, K]`; None for
    priors without neighbour pair tables."""
    if not isinstance(prior, ContextPrior) or not pending.any():
        return None
    h, w = guess.shape
    tokens = torch.zeros((1, stage + 1, h, w), dtype=torch.int64)
    known = torch.zeros(tokens.shape, dtype=torch.bool)
    tokens[0, stage], known[0, stage] = torch.from_numpy(guess), torch.from_numpy(pending)
    bits_per_unit = 2.0**-prior.config.logit_bits / math.log(2)

    def saved(block: np.ndarray) -> torch.Tensor:
        flat = torch.from_numpy(block)
        return prior.neighbour_logits_at(tokens, known, stage, (torch.zeros_like(flat), flat // w, flat % w)) * bits_per_unit

    return saved
