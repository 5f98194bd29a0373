"""Rate term for rate-aware VQ-VAE training: the bits a frozen context prior would spend on a
batch's indices, made differentiable for the encoder.

Each residual's hard index is replaced by a soft assignment over the stage's codewords (a
softmax of negative squared distances), and that assignment is scored by the prior's
log-probabilities, with the batch's hard indices as the context the prior would see while
coding. The gradient moves residuals towards codewords the prior already expects there: the
way to make later stages predictable from earlier ones and from their neighbours, which a
prior trained on a rate-blind codec cannot do on its own.

The codebooks are read after the forward pass's EMA update (decay 0.99, so they moved
little), and a codeword restarted in that update sits on one of the batch's residuals where
the prior rarely expects it: the rate term then leans against that restart a little.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vqcodec.entropy.context import ContextPrior, group_map
from vqcodec.model import CodecConfig
from vqcodec.model.quantizer import ResidualQuantizer

# Softmax temperature as a share of the batch's mean distance to the nearest codeword, per
# stage: distances shrink about 3× per stage, a fixed temperature would be one-hot at the
# last stage and flat at the first. At 0.25 the runner-up codeword (typically 0.3× the
# nearest distance further away) gets about a third of the nearest one's weight.
TEMPERATURE_SHARE = 0.25


def stage_residuals(latent: torch.Tensor, quantizer: ResidualQuantizer, indices: torch.Tensor) -> list[torch.Tensor]:
    """What each stage quantizes, `[B·h·w, D]` per stage, differentiable in `latent`
    `[B, D, h, w]`; earlier stages' codewords (from hard `indices` `[B, S, h, w]`) are constants."""
    d = latent.shape[1]
    residual = latent.permute(0, 2, 3, 1).reshape(-1, d)
    residuals = []
    for s, codebook in enumerate(quantizer.codebooks()):
        residuals.append(residual)
        residual = residual - F.embedding(indices[:, s].reshape(-1), codebook).detach()
    return residuals


def soft_assignment(residual: torch.Tensor, codebook: torch.Tensor, share: float = TEMPERATURE_SHARE) -> torch.Tensor:
    """`[N, K]` probabilities of `residual` `[N, D]` belonging to each codeword of `codebook` `[K, D]`."""
    codebook = codebook.detach()
    distances = (residual * residual).sum(1, keepdim=True) - 2 * residual @ codebook.T + (codebook * codebook).sum(1)
    temperature = share * distances.detach().min(dim=1).values.mean().clamp_min(1e-12)
    return F.softmax(-distances / temperature, dim=1)


def coding_group_masks(
    schedule: str, batch: int, h: int, w: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(known, predict) `[B, h, w]` bools: one coding group per sample, drawn with probability
    proportional to its size (so the sample's mean code length over it estimates the stage's),
    known = the groups coded before it."""
    groups = torch.from_numpy(group_map(schedule, h, w))
    sizes = torch.bincount(groups.flatten()).float()
    chosen = torch.multinomial(sizes, batch, replacement=True, generator=generator).view(-1, 1, 1)
    return groups[None] < chosen, groups[None] == chosen


class RateTerm:
    """Expected bits per pixel of a batch's indices under a frozen context prior."""

    def __init__(
        self,
        prior: ContextPrior,
        config: CodecConfig,
        device: torch.device | str = "cpu",
        temperature_share: float = TEMPERATURE_SHARE,
    ) -> None:
        prior.config.check_fits(config.stages, config.codebook_size, "the rate prior")
        self.prior = prior.to(device).eval().requires_grad_(False)
        self.pixels_per_index = config.stride**2
        self.temperature_share = temperature_share

    def __call__(
        self,
        latent: torch.Tensor,
        indices: torch.Tensor,
        quantizer: ResidualQuantizer,
        keep: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Scalar bits per pixel, averaged over the batch.

        Args:
            latent: `[B, D, h, w]` encoder output (the gradient flows into it).
            indices: `[B, S, h, w]` hard indices the batch was quantized to.
            quantizer: the codec's quantizer (its codebooks give the soft assignments).
            keep: `[B]` stages each sample codes (quantizer dropout); later stages cost nothing.
            generator: a CPU generator; draws the coding group scored per sample and stage.
        """
        b, _, h, w = indices.shape
        device = latent.device
        total = latent.new_zeros(())
        for s, residual in enumerate(stage_residuals(latent, quantizer, indices)):
            known = torch.zeros(indices.shape, dtype=torch.bool, device=device)
            known[:, :s] = True
            stage_known, predict = coding_group_masks(self.prior.config.schedule[s], b, h, w, generator)
            known[:, s], predict = stage_known.to(device), predict.to(device)
            with torch.no_grad():
                [(_, rows, logits)] = self.prior.scored_logits(indices, known, torch.full((b,), s, device=device), predict)
            scored = residual.view(b, h, w, -1)[rows]  # row-major, as the prior's logits
            assignment = soft_assignment(scored, quantizer.stage(s).codebook, self.temperature_share)
            bits = -(assignment * F.log_softmax(logits, dim=1)).sum(1) / math.log(2)  # [n], one per scored position
            # Each sample's mean over its group estimates its stage's code length; pooling all
            # rows instead would weight groups by size², starving the context-free first groups.
            sample = rows.nonzero(as_tuple=True)[0]
            weight = (keep[sample] > s) / rows.sum(dim=(1, 2))[sample]
            total = total + (bits * weight).sum() / b
        return total / self.pixels_per_index
