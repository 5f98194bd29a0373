"""Image quality metrics on torch tensors, shared by training, validation and benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
# HaarPSI constants from Reisenhofer et al. 2018, fitted for images in [0,255].
HAARPSI_C = 30.0
HAARPSI_ALPHA = 4.2
HAARPSI_SCALES = 3
# RGB -> YIQ rows (Y, I, Q), as in the HaarPSI reference implementation.
_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, col: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """Separable correlation over the last two dims with valid padding: `[...,H,W]` → `[...,H-kc+1,W-kr+1]`.

    Sums of shifted slices: several times faster than depthwise `conv2d` on CPUs and
    differentiable like any elementwise op.
    """
    height, width = x.shape[-2:]
    out_h, out_w = height - col.numel() + 1, width - row.numel() + 1
    # In-place accumulation with Python-scalar weights avoids one temporary per tap.
    row_taps, col_taps = row.tolist(), col.tolist()
    acc = x[..., :out_w] * row_taps[0]
    for i, tap in enumerate(row_taps[1:], start=1):
        acc = acc.add_(x[..., i : i + out_w], alpha=tap)
    out = acc[..., :out_h, :] * col_taps[0]
    for i, tap in enumerate(col_taps[1:], start=1):
        out = out.add_(acc[..., i : i + out_h, :], alpha=tap)
    return out


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and contrast-structure terms, images `[B,C,H,W]` in [0,1]."""
    moments = _filter_valid(torch.stack([x, y, x * x, y * y, x * y]), window, window)  # [5,B,C,h,w]
    mu_x, mu_y, xx, yy, xy = moments.unbind(0)
    sigma_xx = xx - mu_x**2
    sigma_yy = yy - mu_y**2
    sigma_xy = xy - mu_x * mu_y
    cs = (2 * sigma_xy + SSIM_C2) / (sigma_xx + sigma_yy + SSIM_C2)
    luminance = (2 * mu_x * mu_y + SSIM_C1) / (mu_x**2 + mu_y**2 + SSIM_C1)
    return (luminance * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def max_ms_ssim_scales(height: int, width: int, limit: int = 5) -> int:
    """Most MS-SSIM scales (≤ `limit`) an image of `height`×`width` supports; 0 if under 11 px."""
    scales = 0
    while scales < limit and min(height, width) >= 11 * 2**scales:
        scales += 1
    return scales


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


def _filter_same(x: torch.Tensor, col: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """Separable 2-D convolution of `[...,H,W]`, zero-padded to keep `H,W`.

    Even kernels are placed like scipy's `convolve2d(mode="same")` (k/2 before, k/2-1 after),
    so the result matches the published HaarPSI code pixel for pixel.
    """
    kc, kr = col.numel(), row.numel()
    x = F.pad(x, (kr // 2, (kr - 1) // 2, kc // 2, (kc - 1) // 2))
    return _filter_valid(x, torch.flip(col, dims=(0,)), torch.flip(row, dims=(0,)))


def _haar_responses(lum: torch.Tensor) -> torch.Tensor:
    """Haar wavelet magnitudes `[B,2,scales,H,W]` (horizontal, vertical edges) of luminance `[B,H,W]`."""
    orientations: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    for scale in range(1, HAARPSI_SCALES + 1):
        half = torch.full((2 ** (scale - 1),), 2.0**-scale, dtype=lum.dtype, device=lum.device)
        step, flat = torch.cat([-half, half]), torch.ones(2**scale, dtype=lum.dtype, device=lum.device)
        orientations[0].append(_filter_same(lum, step, flat).abs())
        orientations[1].append(_filter_same(lum, flat, step).abs())
    return torch.stack([torch.stack(o, dim=1) for o in orientations], dim=1)


def _similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (2 * a * b + HAARPSI_C) / (a**2 + b**2 + HAARPSI_C)


def haarpsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Haar wavelet-based perceptual similarity index (Reisenhofer et al. 2018), `[B]` in [0,1].

    Needs no learned weights. Follows the authors' reference code: YIQ colour space, 2×2
    mean pre-filter with subsampling, three Haar scales (two for local similarity, the
    coarsest for the weight map), logistic pooling with C=30 and alpha=4.2. Identical
    images score exactly 1.

    Args:
        x: reference images `[B,3,H,W]` in [0,1].
        y: distorted images, same shape.
    """
    yiq = torch.tensor(_YIQ, dtype=torch.float64, device=x.device)
    mean2 = torch.full((2,), 0.5, dtype=torch.float64, device=x.device)

    def prepare(img: torch.Tensor) -> torch.Tensor:
        img = torch.einsum("kc,bchw->bkhw", yiq, img.double() * 255.0)  # [B,3(YIQ),H,W]
        return _filter_same(img, mean2, mean2)[..., ::2, ::2]  # [B,3,H/2,W/2]

    px, py = prepare(x), prepare(y)
    hx, hy = _haar_responses(px[:, 0]), _haar_responses(py[:, 0])  # [B,2,scales,h,w]
    weights = torch.maximum(hx[:, :, -1], hy[:, :, -1])  # [B,2,h,w]
    local = _similarity(hx[:, :, :2], hy[:, :, :2]).mean(dim=2)  # [B,2,h,w]
    chroma = _similarity(_filter_same(px[:, 1:], mean2, mean2).abs(), _filter_same(py[:, 1:], mean2, mean2).abs())
    local = torch.cat([local, chroma.mean(dim=1, keepdim=True)], dim=1)  # [B,3,h,w]
    weights = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)
    pooled = (torch.sigmoid(HAARPSI_ALPHA * local) * weights).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3))
    return ((torch.logit(pooled) / HAARPSI_ALPHA) ** 2).to(x.dtype)
