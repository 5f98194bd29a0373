"""Fit the static per-stage prior: count the indices a trained codec gives the training
images and bake them into the codec's integer frequency table, then export shippable weights."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from vqcodec import coding
from vqcodec.imaging import prepare_image
from vqcodec.model import VQCodec

from .checkpoint import export_weights
from .data import list_images
from .warm_start import load_vqvae


@torch.inference_mode()
def count_indices(codec: VQCodec, files: list[Path]) -> torch.Tensor:
    """Index counts `[S, K]` over whole images, normalised and padded as `compress` does."""
    config = codec.config
    counts = torch.zeros(config.stages, config.codebook_size, dtype=torch.int64)
    for path in tqdm(files, desc="counting indices", unit="image", dynamic_ncols=True):
        indices = torch.from_numpy(coding.quantize(codec, prepare_image(path).rgb, config.stages))  # [S, h, w]
        for stage in range(config.stages):
            counts[stage] += torch.bincount(indices[stage].flatten(), minlength=config.codebook_size)
    return counts


def export_model(weights: Path, output: Path, data_dir: Path, description: str = "") -> torch.Tensor:
    """Fit the static prior of trained `weights` (a weights file, or a VQ-VAE run's `latest.pt`:
    a resume state kept without its weights file) on the images under `data_dir` and write
    shippable weights to `output`; returns the index counts `[S, K]` it fitted.

    Raises:
        ValueError, RuntimeError: not codec weights (or weights that do not fit their config).
        FileNotFoundError: no images under `data_dir`.
    """
    codec = load_vqvae(weights)
    counts = count_indices(codec, list_images(data_dir))
    codec.prior.fit(counts)
    export_weights(codec, output, description)
    return counts
