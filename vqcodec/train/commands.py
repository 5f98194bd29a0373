"""The training commands: `train`, `leg-state`, `export-model`, `train-prior` and `pack-data`, each parsing
and checking its arguments and calling the training library. `vqcodec` mounts them lazily
(this module imports torch), and `python -m vqcodec.train` runs `train` alone."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import torch

from vqcodec.cli import check_output
from vqcodec.entropy.context import TILES, PriorConfig
from vqcodec.zoo import load_codec_file

from .config import load_config
from .export import export_model
from .pack import QUALITY, SHORT_SIDE, pack_training_set
from .prior_loop import DEFAULT_SCHEDULE, PriorTrainConfig, train_prior


def _check_file_output(path: str, force: bool, inputs: list[str]) -> None:
    """`check_output` for an output that is always a file: here '-' names a file, not stdout."""
    check_output(os.path.join(os.curdir, path), force, inputs)


@click.command("train", context_settings={"ignore_unknown_options": True})
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="JSON training config.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from OUT_DIR/latest.pt if it exists, with its stored config (the config file and overrides apply on top).",
)
@click.argument("overrides", nargs=-1)
def train_command(config_path: str | None, resume: bool, overrides: tuple[str, ...]) -> None:
    """Train a codec. OVERRIDES are key=value (e.g. steps=8000 model.stages=4 data_dir=...).

    phase=vqvae trains encoder, codebooks and the fidelity decoder; phase=vqgan
    init_from=RUN/latest.pt fine-tunes a realism decoder on them with a discriminator.
    phase=vqvae init_from=RUN/latest.pt model.stages=8 starts a fresh schedule from a trained
    VQ-VAE (or an installed model: init_from=vqc-f8-s10), with residual stages added after its
    own; its networks may grow deeper (model.decoder_blocks=[4,3]) and wider
    (model.width_fine=96), and its codebooks change size (model.codebook_size=512).
    """
    from .checkpoint import WEIGHTS, resume_run
    from .gan import train_vqgan
    from .loop import train_vqvae

    phases = {"vqvae": train_vqvae, "vqgan": train_vqgan}
    try:
        config = load_config(config_path, list(overrides))
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from error
    if config.phase not in phases:
        raise click.UsageError(f"unknown phase {config.phase!r}; expected one of {sorted(phases)}")
    try:
        state = None
        if resume:
            config, state = resume_run(config, config_path, list(overrides))
        phases[config.phase](config, state)
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # RuntimeError: weights that do not fit
        raise click.ClickException(str(error)) from error
    click.echo(f"weights written to {config.out_dir}/{WEIGHTS}")


@click.command("leg-state")
@click.argument("state", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite OUTPUT.")
def leg_state_command(state: str, output: str, force: bool) -> None:
    """Write what the next leg of a VQ-VAE run starts from (init_from=OUTPUT): the weights of
    STATE (a run's latest.pt) in float16, without the optimizer, about a sixth of its size."""
    from .checkpoint import leg_state, load_checkpoint, save_checkpoint

    _check_file_output(output, force, [state])
    try:
        lean = leg_state(load_checkpoint(Path(state)))
    except ValueError as error:  # not a checkpoint, or not a VQ-VAE one
        raise click.ClickException(str(error)) from error
    save_checkpoint(Path(output), lean)
    click.echo(f"wrote {output} ({Path(output).stat().st_size / 2**20:.1f} MiB, step {lean['step']})")


@click.command("export-model")
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option(
    "--data-dir", required=True, type=click.Path(exists=True, file_okay=False), help="Training images to fit the prior on."
)
@click.option("--description", default="", help="Stored in the weights' metadata.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT.")
def export_model_command(weights: str, output: str, data_dir: str, description: str, force: bool) -> None:
    """Fit the static prior of trained WEIGHTS on DATA_DIR and write shippable OUTPUT weights.

    WEIGHTS is a weights file (weights.safetensors) or a VQ-VAE run's training state (latest.pt).
    """
    _check_file_output(output, force, [weights])
    try:
        counts = export_model(Path(weights), Path(output), Path(data_dir), description)
    except (ValueError, RuntimeError, FileNotFoundError) as error:  # not codec weights; no images
        raise click.ClickException(str(error)) from error
    used = (counts > 0).float().mean(dim=1)
    for stage, share in enumerate(used.tolist()):
        click.echo(f"stage {stage}: {share:.1%} of codewords used on the training images")
    click.echo(f"wrote {output}")


@click.command("train-prior")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option(
    "--codec",
    "codec_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Frozen codec weights (safetensors).",
)
@click.option(
    "--run-dir", type=click.Path(file_okay=False), help="Token cache, checkpoints and logs [default: OUT's folder/prior-run]."
)
@click.option("--steps", default=PriorTrainConfig.steps, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=PriorTrainConfig.batch_size, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=PriorTrainConfig.lr, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--width", default=PriorConfig.width, show_default=True, type=click.IntRange(1, 64), help="Trunk channels.")
@click.option("--blocks", default=PriorConfig.blocks, show_default=True, type=click.IntRange(0, 16), help="Residual blocks.")
@click.option("--threads", default=0, type=click.IntRange(0), help="Torch CPU threads (0: torch's default).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--schedule",
    default=",".join(DEFAULT_SCHEDULE),
    show_default=True,
    help=f"Coding groups per stage: tile names from {', '.join(TILES)}, comma-separated; the last repeats.",
)
@click.option(
    "--search-prior",
    type=click.Path(exists=True, dir_okay=False),
    help="Train on the indices the rate-distortion search writes against this context prior "
    "(as `vqcodec encode` does) instead of the nearest codewords.",
)
@click.option(
    "--search-lambda",
    default=0.08,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Relative λ of that search (the shipped model's rdo_lambdas).",
)
@click.option("--resume", is_flag=True, help="Continue from RUN_DIR/prior_latest.pt if it exists.")
@click.option("--force", is_flag=True, help="Overwrite OUT.")
def train_prior_command(
    data_dir,
    out,
    codec_path,
    run_dir,
    steps,
    batch_size,
    lr,
    width,
    blocks,
    threads,
    seed,
    schedule,
    search_prior,
    search_lambda,
    resume,
    force,
) -> None:
    """Train the context prior on DATA_DIR's images (tokens of the frozen --codec) and write it to OUT."""
    out_path = Path(out)
    _check_file_output(out, force, [codec_path, *([search_prior] if search_prior else [])])
    if threads:
        torch.set_num_threads(threads)
    try:
        codec_config = load_codec_file(codec_path).config
        tiles = schedule.split(",")
        tiles += tiles[-1:] * (codec_config.stages - len(tiles))
        prior_config = PriorConfig(
            stages=codec_config.stages,
            codebook_size=codec_config.codebook_size,
            width=width,
            blocks=blocks,
            schedule=tuple(tiles[: codec_config.stages]),
        )
        config = PriorTrainConfig(
            prior=prior_config,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            search_lambda=search_lambda if search_prior else 0.0,
        )
        run = Path(run_dir) if run_dir else out_path.parent / "prior-run"
        started = time.time()
        train_prior(Path(codec_path), Path(data_dir), out_path, run, config, resume, Path(search_prior) if search_prior else None)
    except (ValueError, RuntimeError, FileNotFoundError) as error:  # RuntimeError: a checkpoint that does not fit
        raise click.ClickException(str(error)) from error
    click.echo(f"prior written to {out_path} ({time.time() - started:.0f} s)")


@click.command("pack-data")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.argument("destination", type=click.Path())
@click.option(
    "--short-side",
    default=SHORT_SIDE,
    show_default=True,
    help="Shorter side of the packed images, in pixels (smaller images are kept as they are); "
    "at least the largest crop or validation crop training will take.",
)
@click.option("--quality", default=QUALITY, show_default=True, help="WebP quality of the packed images (1-100).")
@click.option("--force", is_flag=True, help="Replace DESTINATION if it exists.")
def pack_data_command(source: str, destination: str, short_side: int, quality: int, force: bool) -> None:
    """Write a compact copy of the training images under SOURCE to DESTINATION (scaled down,
    WebP, same folder tree), e.g. to move a training set to a GPU machine."""
    source_path, destination_path = Path(source), Path(destination)
    try:
        packed = pack_training_set(source_path, destination_path, short_side, quality, force)
    except (ValueError, OSError) as error:  # OSError covers FileExistsError and FileNotFoundError
        raise click.ClickException(str(error)) from error
    before = sum(path.stat().st_size for path in packed)
    after = sum(path.stat().st_size for path in packed.values())
    click.echo(f"packed {len(packed)} images: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB in {destination}")
