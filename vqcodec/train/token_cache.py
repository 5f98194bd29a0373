"""The token cache of prior training: every training image's index grid, as `vqcodec encode`
quantizes it (nearest codewords, or the rate–distortion search against a given prior), stored
once per codec, search prior and image list, so runs and resumes skip the encoding."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from vqcodec import coding
from vqcodec.entropy.context import ContextPrior
from vqcodec.entropy.prior_file import load_prior_file
from vqcodec.zoo import file_sha256, load_codec_file

from .config import PriorTrainConfig
from .data import load_rgb


def token_image(path: Path, min_side: int, max_side: int) -> np.ndarray:
    """`[H, W, 3]` uint8 of a training image as the token cache encodes it: downscaled if a
    side exceeds max_side, though never below min_side, so every grid holds a training crop."""
    rgb = load_rgb(path, min_side)
    scale = max(max_side / max(rgb.shape[:2]), min_side / min(rgb.shape[:2]))
    if scale < 1:
        from PIL import Image

        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))
    return rgb


def _encode_file(
    codec, path: Path, min_side: int, max_side: int, search_prior: ContextPrior | None, search_lambda: float
) -> np.ndarray:
    """One image → `[S, h, w]` int16 token grid: nearest codewords, or searched against
    `search_prior` with relative λ `search_lambda`."""
    stages = codec.config.stages
    lambdas = None if search_prior is None else [search_lambda] * stages
    return coding.quantize(codec, token_image(path, min_side, max_side), stages, search_prior, lambdas).astype(np.int16)


def read_token_cache(path: Path) -> tuple[dict[str, str], list[np.ndarray]]:
    """(metadata, token grids `[S, h, w]` int16) of a cache written by `load_or_build_cache`."""
    with safe_open(str(path), framework="np") as handle:
        flat, shapes = handle.get_tensor("tokens"), handle.get_tensor("shapes")
        metadata = handle.metadata() or {}
    ends = np.cumsum(shapes.prod(axis=1))
    return metadata, [flat[e - s.prod() : e].reshape(s) for e, s in zip(ends, shapes)]


def load_or_build_cache(
    codec_path: Path, files: list[Path], cache_path: Path, config: PriorTrainConfig, search_prior_path: Path | None = None
) -> list[np.ndarray]:
    """Token grids of `files`, read from `cache_path` when it was built by the same codec
    weights (and search prior and λ) from the same file list, else encoded now and written there."""
    # Paths, sizes and modification times: another folder, or images edited in place, rebuild it.
    listing = "\n".join(f"{p}\t{stat.st_size}\t{stat.st_mtime_ns}" for p, stat in ((p, p.stat()) for p in files))
    key = {
        "codec_sha256": file_sha256(codec_path),
        "files": str(len(files)),
        "max_side": str(config.max_side),
        "listing": hashlib.sha256(listing.encode()).hexdigest(),
    }
    if search_prior_path is not None:
        key["search"] = f"{file_sha256(search_prior_path)} {config.search_lambda!r}"
    if cache_path.exists():
        metadata, grids = read_token_cache(cache_path)
        if metadata == key:
            return grids
        click.echo(f"{cache_path} was built from other weights or images; rebuilding it")
    codec = load_codec_file(codec_path)
    search_prior = None if search_prior_path is None else load_prior_file(search_prior_path)
    if search_prior is not None:
        search_prior.config.check_fits(codec.config.stages, codec.config.codebook_size, f"search prior {search_prior_path}")
    min_side = config.crop * codec.config.stride
    grids = [
        _encode_file(codec, path, min_side, config.max_side, search_prior, config.search_lambda)
        for path in tqdm(files, desc="encode tokens", unit="img")
    ]
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "tokens": torch.from_numpy(np.concatenate([g.reshape(-1) for g in grids])),
        "shapes": torch.tensor([g.shape for g in grids], dtype=torch.int64),
    }
    save_file(tensors, str(cache_path), metadata=key)
    return grids
