"""Training losses as pure functions (taming-transformers' good recipes, kept out of the model)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, valid padding, per channel. x: `[B,C,H,W]`."""
    c = x.shape[1]
    x = F.conv2d(x, window.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, window.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and contrast-structure terms, images in [0,1]."""
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    sigma_xx = _blur(x * x, window) - mu_x**2
    sigma_yy = _blur(y * y, window) - mu_y**2
    sigma_xy = _blur(x * y, window) - mu_x * mu_y
    cs = (2 * sigma_xy + SSIM_C2) / (sigma_xx + sigma_yy + SSIM_C2)
    luminance = (2 * mu_x * mu_y + SSIM_C1) / (mu_x**2 + mu_y**2 + SSIM_C1)
    return (luminance * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int = 5) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003), `[B]`, images `[B,C,H,W]` in [0,1].

    Fewer `scales` (renormalised weights) fit small training crops: each scale halves the
    image and the 11-tap window needs ≥ 11 pixels at the coarsest one.
    """
    if min(x.shape[-2:]) < 11 * 2 ** (scales - 1):
        raise ValueError(f"images of {tuple(x.shape[-2:])} are too small for {scales} MS-SSIM scales")
    window = _gaussian_window(11, 1.5, x.device)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=x.device)
    weights = weights / weights.sum()
    factors = []
    for scale in range(scales):
        ssim, cs = _ssim_terms(x, y, window)
        if scale == scales - 1:
            factors.append(ssim.clamp_min(1e-6))
        else:
            factors.append(cs.clamp_min(1e-6))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.prod(torch.stack(factors, dim=0) ** weights.unsqueeze(1), dim=0)


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
    return sum(F.l1_loss(fake, real.detach()) for real, fake in zip(features_real, features_fake)) / len(features_real)


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


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, `[B]`, images in [0,1]."""
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)
