"""Fit the static per-stage prior: count the indices a trained codec gives the training
images and bake them into the codec's integer frequency table, then export shippable weights."""

from __future__ import annotations

from pathlib import Path

import click
import torch
from tqdm import tqdm

from vqcodec import coding
from vqcodec.imaging import prepare_image
from vqcodec.model import VQCodec
from vqcodec.zoo import load_codec_file

from .checkpoint import export_weights
from .data import list_images


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


@click.command("export-model")
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option(
    "--data-dir", required=True, type=click.Path(exists=True, file_okay=False), help="Training images to fit the prior on."
)
@click.option("--description", default="", help="Stored in the weights' metadata.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT.")
def export_model_command(weights: str, output: str, data_dir: str, description: str, force: bool) -> None:
    """Fit the static prior of trained WEIGHTS on DATA_DIR and write shippable OUTPUT weights."""
    if Path(output).exists() and not force:
        raise click.ClickException(f"{output} exists; pass --force to overwrite it")
    try:
        codec = load_codec_file(weights)
        counts = count_indices(codec, list_images(data_dir))
    except (ValueError, RuntimeError, FileNotFoundError) as error:  # not codec weights; no images
        raise click.ClickException(str(error)) from error
    codec.prior.fit(counts)
    export_weights(codec, Path(output), description)
    used = (counts > 0).float().mean(dim=1)
    for stage, share in enumerate(used.tolist()):
        click.echo(f"stage {stage}: {share:.1%} of codewords used on the training images")
    click.echo(f"wrote {output}")
