"""Residual vector quantizer with EMA codebooks, k-means initialisation and dead-code restart.

Stage s quantizes what stages < s left over, so decoding with the first s stages gives a
coarser image from the same indices: the basis of variable rate and progressive decoding.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vqcodec.kernels import nearest_codeword

EMA_DECAY = 0.99
DEAD_CODE_THRESHOLD = 0.25  # EMA usage count under which a code is restarted
KMEANS_ITERATIONS = 10


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum across data-parallel processes, so every replica keeps identical codebooks."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def _kmeans(samples: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """A few Lloyd iterations from k random samples; `samples` is `[N, D]` with N ≥ 1."""
    picks = torch.randint(samples.shape[0], (k,), generator=generator)
    centers = samples[picks].clone()
    for _ in range(KMEANS_ITERATIONS):
        assignment, _ = nearest_codeword(samples, centers)
        sums = torch.zeros_like(centers).index_add_(0, assignment, samples)
        counts = torch.bincount(assignment, minlength=k).unsqueeze(1).float()
        centers = torch.where(counts > 0, sums / counts.clamp_min(1.0), centers)
    return centers


class QuantizerStage(nn.Module):
    """One codebook `[K, D]` kept as an exponential moving average of its assigned vectors."""

    codebook: torch.Tensor  # [K, D]
    ema_count: torch.Tensor  # [K] float, EMA of how many vectors each code was assigned
    ema_sum: torch.Tensor  # [K, D], EMA of the sum of those vectors
    initialized: torch.Tensor  # bool scalar: k-means has run

    def __init__(self, codebook_size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("codebook", torch.randn(codebook_size, dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.tensor(False))

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """`[N, D]` → `[N]` int64 indices."""
        indices, _ = nearest_codeword(vectors, self.codebook)
        return indices

    @torch.no_grad()
    def initialize(self, vectors: torch.Tensor, generator: torch.Generator) -> None:
        """k-means on the first training batch: every code starts where the data is."""
        centers = _kmeans(vectors.float(), self.codebook.shape[0], generator)
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(centers, src=0)
        self.codebook.copy_(centers)
        self.ema_sum.copy_(centers)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def ema_update(self, vectors: torch.Tensor, indices: torch.Tensor, generator: torch.Generator) -> None:
        """Move codewords towards the mean of their assigned vectors; restart unused ones."""
        k = self.codebook.shape[0]
        vectors = vectors.float()
        counts = _all_reduce_sum(torch.bincount(indices, minlength=k).float())
        sums = _all_reduce_sum(torch.zeros_like(self.ema_sum).index_add_(0, indices, vectors))
        self.ema_count.mul_(EMA_DECAY).add_(counts, alpha=1 - EMA_DECAY)
        self.ema_sum.mul_(EMA_DECAY).add_(sums, alpha=1 - EMA_DECAY)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (total + k * 1e-5) * total  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = self.ema_count < DEAD_CODE_THRESHOLD
        if dead.any():
            picks = torch.randint(vectors.shape[0], (int(dead.sum()),), generator=generator)
            replacement = vectors[picks]
            if dist.is_available() and dist.is_initialized():
                dist.broadcast(replacement, src=0)
            self.codebook[dead] = replacement
            self.ema_sum[dead] = replacement
            self.ema_count[dead] = 1.0


class ResidualQuantizer(nn.Module):
    """S quantizer stages applied to successive residuals of `[B, D, h, w]` latents."""

    def __init__(self, stages: int, codebook_size: int, dim: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(QuantizerStage(codebook_size, dim) for _ in range(stages))
        # Codebook restarts draw from their own generator so a resumed run replays exactly.
        self.generator = torch.Generator().manual_seed(0)

    def stage(self, s: int) -> QuantizerStage:
        """Stage `s`, counted from 0 (typed: an nn.ModuleList hands out plain Modules)."""
        stage = self.stages[s]
        assert isinstance(stage, QuantizerStage)
        return stage

    def codebooks(self, stages: int | None = None) -> list[torch.Tensor]:
        """The codebooks `[K, D]` of the first `stages` stages (None = all)."""
        return [self.stage(s).codebook for s in range(len(self.stages))[:stages]]

    def forward(
        self, latent: torch.Tensor, stages_per_sample: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training path: quantize with straight-through gradients.

        Args:
            latent: `[B, D, h, w]`.
            stages_per_sample: `[B]` int in [1, S]; sample b uses only its first n_b stages
                (quantizer dropout, so one model serves every rate). None = all stages.

        Returns:
            quantized `[B, D, h, w]` (straight-through), indices `[B, S, h, w]` int64,
            commitment loss (scalar).
        """
        b, d, h, w = latent.shape
        flat = latent.permute(0, 2, 3, 1).reshape(-1, d)  # [B*h*w, D]
        residual = flat
        quantized = torch.zeros_like(flat)
        all_indices, commit = [], latent.new_zeros(())
        for s in range(len(self.stages)):
            stage = self.stage(s)
            if self.training and not bool(stage.initialized):
                stage.initialize(residual.detach(), self.generator)
            indices = stage.nearest(residual.detach())
            if self.training:
                stage.ema_update(residual.detach(), indices, self.generator)
            codewords = F.embedding(indices, stage.codebook)  # [B*h*w, D]
            commit = commit + F.mse_loss(residual, codewords.detach())
            if stages_per_sample is not None:
                keep = (stages_per_sample > s).repeat_interleave(h * w).unsqueeze(1)
                quantized = quantized + codewords * keep
            else:
                quantized = quantized + codewords
            residual = residual - codewords.detach()
            all_indices.append(indices.view(b, h, w))
        quantized = flat + (quantized - flat).detach()  # straight-through estimator
        quantized = quantized.view(b, h, w, d).permute(0, 3, 1, 2)
        return quantized, torch.stack(all_indices, dim=1), commit / len(self.stages)

    @torch.no_grad()
    def encode(self, latent: torch.Tensor, stages: int) -> torch.Tensor:
        """`[B, D, h, w]` → indices `[B, stages, h, w]` int64."""
        b, d, h, w = latent.shape
        residual = latent.permute(0, 2, 3, 1).reshape(-1, d)
        all_indices = []
        for s in range(len(self.stages))[:stages]:
            stage = self.stage(s)
            indices = stage.nearest(residual)
            residual = residual - F.embedding(indices, stage.codebook)
            all_indices.append(indices.view(b, h, w))
        return torch.stack(all_indices, dim=1)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices `[B, s, h, w]` (s ≤ S) → quantized latent `[B, D, h, w]`."""
        total = F.embedding(indices[:, 0], self.stage(0).codebook)  # [B, h, w, D]
        for s in range(1, indices.shape[1]):
            total = total + F.embedding(indices[:, s], self.stage(s).codebook)
        return total.permute(0, 3, 1, 2)
