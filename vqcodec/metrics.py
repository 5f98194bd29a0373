"""Image quality metrics on torch tensors, shared by training, validation and benchmarks."""
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


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, `[B]`, images in [0,1]."""
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)
