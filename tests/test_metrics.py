"""Quality metrics against known values."""

import math

import pytest
import torch

from vqcodec.metrics import haarpsi, max_ms_ssim_scales, ms_ssim, psnr


def _pattern(height: int = 40, width: int = 56) -> torch.Tensor:
    """A deterministic colour test image `[1,3,H,W]` in [0,1] with edges at several scales."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    channels = [0.5 + 0.4 * torch.sin(xx / 3.0), 0.5 + 0.4 * torch.cos(yy / 2.0), ((xx * yy) % 17) / 16.0]
    return torch.stack(channels)[None].float()


def _checker_noise(image: torch.Tensor, amplitude: float) -> torch.Tensor:
    height, width = image.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    sign = ((xx // 2 + yy // 3) % 2) * 2 - 1
    return (image + amplitude * sign).clamp(0, 1)


def test_psnr_of_known_mse():
    x = torch.full((2, 3, 8, 8), 0.5)
    y = x + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)  # MSE 1e-2 and 1e-4
    assert torch.allclose(psnr(x, y), torch.tensor([20.0, 40.0]), atol=1e-3)


def test_psnr_of_identical_images_is_capped():
    x = torch.rand(1, 3, 8, 8)
    assert psnr(x, x).item() == pytest.approx(100.0)


def test_ms_ssim_of_image_with_itself_is_one():
    x = torch.rand(2, 3, 176, 180)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-6)


def test_ms_ssim_falls_with_distortion_and_rejects_tiny_images():
    x = _pattern(48, 64)
    light, heavy = ms_ssim(x, _checker_noise(x, 0.05), scales=3), ms_ssim(x, _checker_noise(x, 0.2), scales=3)
    assert 0 < heavy.item() < light.item() < 1
    with pytest.raises(ValueError, match="too small"):
        ms_ssim(x, x, scales=4)


@pytest.mark.parametrize(("size", "scales"), [(10, 0), (11, 1), (43, 2), (44, 3), (175, 4), (176, 5), (768, 5)])
def test_max_ms_ssim_scales(size, scales):
    assert max_ms_ssim_scales(size, 1000) == scales
    if scales:
        ms_ssim(torch.rand(1, 3, size, size), torch.rand(1, 3, size, size), scales=scales)  # must not raise


def test_haarpsi_of_identical_images_is_one():
    x = _pattern()
    assert haarpsi(x, x).item() == pytest.approx(1.0, abs=1e-6)


def test_haarpsi_matches_reference_code_values():
    # Values from a direct NumPy port of the authors' reference implementation (haarPsi.py).
    x = _pattern()
    assert haarpsi(x, _checker_noise(x, 0.15)).item() == pytest.approx(0.98886584, abs=1e-6)
    assert haarpsi(x, torch.flip(x, dims=(2,))).item() == pytest.approx(0.51561303, abs=1e-6)


def test_haarpsi_is_symmetric_and_falls_with_distortion():
    x = _pattern()
    scores = [haarpsi(x, _checker_noise(x, a)).item() for a in (0.02, 0.1, 0.3)]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < 1
    y = _checker_noise(x, 0.1)
    assert math.isclose(haarpsi(x, y).item(), haarpsi(y, x).item(), rel_tol=1e-6)
