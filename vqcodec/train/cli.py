"""Command line for training; `vqcodec train` mounts the same click command."""

from __future__ import annotations

import click

from .config import load_config


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
