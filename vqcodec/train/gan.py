"""Stage 2, VQ-GAN: fine-tune a second ("realism") decoder against a PatchGAN discriminator on
the frozen encoder and codebooks of a trained VQ-VAE.

The fidelity decoder is left untouched, so one exported file decodes either way and the
choice is made at decode time. The discriminator trains from step 0; its hinge-adversarial
and feature-matching terms enter the decoder's loss only from `disc_start`, by which time the
discriminator is no longer random. Feature matching on the discriminator's activations is the
perceptual term by default: it needs no downloaded network. With `lpips_weights` (a local
file, `lpips.py`) an LPIPS term joins the reconstruction loss from step 0, as in taming's
VQ-GAN, and so also enters the adaptive weight's gradient-norm ratio.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vqcodec.model import VQCodec
from vqcodec.model.codec import DECODER_NAMES
from vqcodec.model.discriminator import PatchDiscriminator

from .checkpoint import config_from_checkpoint, restore_run, save_run
from .config import TrainConfig
from .loop import TrainingRun, autocast, channels_last_on
from .losses import (
    adaptive_gan_weight,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    reconstruction_loss,
)
from .lpips import load_lpips
from .schedule import learning_rate, set_learning_rate
from .warm_start import load_vqvae

GAN_BETAS = (0.5, 0.9)  # lower momentum than stage 1: the adversarial target moves every step


def add_realism_decoder(base: VQCodec) -> VQCodec:
    """A codec with both decoders: `base`'s weights, realism initialised as a copy of fidelity
    (kept as is when `base` already has one)."""
    if "realism" in base.decoders:
        return base
    model = VQCodec(base.config, decoders=DECODER_NAMES)
    state = base.state_dict()
    prefix = "decoders.fidelity."
    copies = {"decoders.realism." + k[len(prefix) :]: v.clone() for k, v in state.items() if k.startswith(prefix)}
    model.load_state_dict({**state, **copies}, strict=True)
    return model


def freeze_all_but_realism(model: VQCodec) -> None:
    """Encoder, codebooks and fidelity decoder: no gradients and eval mode (no EMA codebook
    updates, no restarts); only the realism decoder trains."""
    model.requires_grad_(False)
    model.eval()
    model.decoders["realism"].requires_grad_(True)
    model.decoders["realism"].train()


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients inside: the decoder's loss flows through the discriminator
    without touching (or paying for) the discriminator's own gradients."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


@dataclass
class GanParts:
    """The trained modules of stage 2; `decoder` and `disc_wrapped` are DDP-wrapped under torchrun."""

    model: VQCodec
    decoder: nn.Module
    disc: PatchDiscriminator
    disc_wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    disc_optimizer: torch.optim.Optimizer
    lpips: nn.Module | None = None  # frozen LPIPS network when `lpips_weights` is set


def _decoder_loss(
    parts: GanParts, batch: torch.Tensor, keep: torch.Tensor, config: TrainConfig, adversarial: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Realism reconstruction `[B,3,H,W]` and its loss terms (`total` is what is minimised)."""
    model = parts.model
    with torch.no_grad():  # frozen and fp32, so the decoder trains on the codes inference produces
        quantized, _, _ = model.quantizer(model.encoder(batch), keep)
    with autocast(batch.device):
        reconstruction = parts.decoder(quantized).float()
    terms = reconstruction_loss(reconstruction, batch, config.ms_ssim_weight, config.ms_ssim_scales)
    base = terms["loss"]
    if parts.lpips is not None:
        terms["lpips"] = parts.lpips(reconstruction, batch)
        base = base + config.lpips_weight * terms["lpips"]
    terms["total"] = base
    if adversarial:
        with _frozen(parts.disc), autocast(batch.device):
            logits_fake, features_fake = parts.disc(reconstruction)
            with torch.no_grad():
                _, features_real = parts.disc(batch)
        terms["feature_matching"] = feature_matching_loss([f.float() for f in features_real], [f.float() for f in features_fake])
        terms["generator"] = hinge_generator_loss(logits_fake.float())
        perceptual = base + config.feature_matching_weight * terms["feature_matching"]
        terms["adaptive_weight"] = adaptive_gan_weight(perceptual, terms["generator"], _last_layer(model))
        terms["total"] = perceptual + config.gan_weight * terms["adaptive_weight"] * terms["generator"]
    return reconstruction, terms


def _discriminator_update(parts: GanParts, batch: torch.Tensor, reconstruction: torch.Tensor) -> dict[str, torch.Tensor]:
    """One hinge-loss step of the discriminator on real crops vs. detached reconstructions."""
    with autocast(batch.device):
        logits, _ = parts.disc_wrapped(torch.cat([batch, reconstruction.detach()]))  # one pass: [2B,1,h,w]
    real, fake = logits.float().chunk(2)
    loss = hinge_discriminator_loss(real, fake)
    parts.disc_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.disc_optimizer.step()
    return {"disc_loss": loss, "logits_real": real.mean(), "logits_fake": fake.mean()}


def _last_layer(model: VQCodec) -> torch.Tensor:
    """Weight of the realism decoder's last convolution, where the adaptive weight compares
    the gradients of the two losses."""
    conv = model.decoders["realism"].get_submodule("to_pixels.1")
    assert isinstance(conv, nn.Conv2d)
    return conv.weight


def gan_step(
    parts: GanParts, batch: torch.Tensor, keep: torch.Tensor, config: TrainConfig, adversarial: bool
) -> dict[str, torch.Tensor]:
    """One decoder step then one discriminator step on `batch` `[B,3,H,W]` in [0,1].

    Args:
        keep: `[B]` stages each sample is decoded from (stage dropout, so every rate is served).
        adversarial: whether the GAN and feature-matching terms are on (step ≥ disc_start).

    Returns:
        detached scalar terms (reconstruction `loss`, `total`, discriminator terms, …).
    """
    reconstruction, terms = _decoder_loss(parts, batch, keep, config, adversarial)
    parts.optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    parts.optimizer.step()
    terms.update(_discriminator_update(parts, batch, reconstruction))
    return {k: v.detach() for k, v in terms.items()}


def _initial_model(config: TrainConfig, state: dict | None) -> VQCodec:
    """Two-decoder codec: architecture from the resumed checkpoint, else weights from init_from."""
    if state is not None:
        return VQCodec(config_from_checkpoint(state).model, decoders=DECODER_NAMES)
    if not config.init_from:
        raise ValueError("phase vqgan needs init_from=<VQ-VAE latest.pt or weights.safetensors>")
    return add_realism_decoder(load_vqvae(config.init_from))


def train_vqgan(config: TrainConfig, state: dict | None = None) -> VQCodec:
    """Stage 2 (see the module docstring), from `init_from` or from the checkpoint `state`
    (`checkpoint.resume_run`). Returns the two-decoder codec; rank 0 writes `latest.pt`
    (with discriminator state) and `weights.safetensors` in `config.out_dir`.
    The architecture comes from `init_from` (or the resumed checkpoint); `config.model` is
    replaced by it, so `model.*` overrides have no effect in this phase."""
    lpips = load_lpips(config.lpips_weights) if config.lpips_weights else None  # a bad file fails before any output
    model = _initial_model(config, state)
    config = dataclasses.replace(config, model=model.config)  # the architecture is the init's
    run = TrainingRun(config)
    model = channels_last_on(model, run.device)
    freeze_all_but_realism(model)
    disc = channels_last_on(PatchDiscriminator(config.disc_width, config.disc_layers), run.device)
    optimizer = torch.optim.AdamW(
        model.decoders["realism"].parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=GAN_BETAS
    )
    disc_optimizer = torch.optim.AdamW(disc.parameters(), lr=config.disc_lr, betas=GAN_BETAS)
    start = 0
    if state is not None:
        start = restore_run(state, model, optimizer, config.weight_decay)
        disc.load_state_dict(state["disc"], strict=True)
        disc_optimizer.load_state_dict(state["disc_optimizer"])
    parts = GanParts(
        model,
        run.wrap(model.decoders["realism"]),
        disc,
        run.wrap(disc),
        optimizer,
        disc_optimizer,
        lpips.to(run.device) if lpips is not None else None,
    )
    for step, batch in run.batches(start):
        set_learning_rate(optimizer, learning_rate(config, step))
        set_learning_rate(disc_optimizer, learning_rate(config, step, config.disc_lr))
        terms = gan_step(parts, batch, run.stage_dropout(step, batch.shape[0]), config, step >= config.disc_start)
        run.end_step(
            step + 1,
            functools.partial(_gan_scalars, terms, config, step),
            model,
            "realism",
            functools.partial(_save_gan_run, run.out_dir, config, step + 1, parts),
        )
    return model


def _gan_scalars(terms: dict[str, torch.Tensor], config: TrainConfig, step: int) -> dict[str, float]:
    """What stage 2 logs for `step`: the loss terms and the learning rate."""
    return {**{f"train/{k}": v.item() for k, v in terms.items()}, "train/lr": learning_rate(config, step)}


def _save_gan_run(out_dir: Path, config: TrainConfig, step: int, parts: GanParts) -> None:
    """`save_run` plus the discriminator and its optimizer, which only training checkpoints hold."""
    extra = {"disc": parts.disc.state_dict(), "disc_optimizer": parts.disc_optimizer.state_dict()}
    save_run(out_dir, config, step, parts.model, parts.optimizer, extra)
