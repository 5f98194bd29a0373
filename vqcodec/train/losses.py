"""Training losses as pure functions (taming-transformers' good recipes, kept out of the model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqcodec.metrics import ms_ssim


def reconstruction_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, ms_ssim_weight: float, ms_ssim_scales: int
) -> dict[str, torch.Tensor]:
    """MSE (what PSNR measures) plus a weighted (1 − MS-SSIM)."""
    mse = F.mse_loss(reconstruction, target)
    terms = {"mse": mse, "loss": mse}
    if ms_ssim_weight > 0:
        structural = 1.0 - ms_ssim(reconstruction.clamp(0, 1), target, ms_ssim_scales).mean()
        terms["ms_ssim_loss"] = structural
        terms["loss"] = mse + ms_ssim_weight * structural
    return terms


def hinge_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss for the discriminator: push real logits above +1, fake below −1."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.mean()


def feature_matching_loss(features_real: list[torch.Tensor], features_fake: list[torch.Tensor]) -> torch.Tensor:
    """L1 between discriminator features of real and generated images: a perceptual term
    that needs no downloaded network."""
    distances = (F.l1_loss(fake, real.detach()) for real, fake in zip(features_real, features_fake))
    return sum(distances, features_real[0].new_zeros(())) / len(features_real)


def adaptive_gan_weight(
    reconstruction_loss_value: torch.Tensor,
    generator_loss_value: torch.Tensor,
    last_layer: torch.Tensor,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """‖∇rec‖ / ‖∇gan‖ at the decoder's last layer (Esser et al.), so neither term drowns the other."""
    rec_grad = torch.autograd.grad(reconstruction_loss_value, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(generator_loss_value, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()
