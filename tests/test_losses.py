"""Training losses on inputs whose values are known by hand."""

import pytest
import torch

from vqcodec.train.losses import (
    adaptive_gan_weight,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    reconstruction_loss,
)

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "real, fake, expected",
    [
        (2.0, -2.0, 0.0),  # both beyond the margins: nothing to learn
        (0.0, 0.0, 1.0),  # 0.5 * (relu(1) + relu(1))
        (1.0, 1.0, 1.0),  # real at the margin, fake costs 2: 0.5 * (0 + 2)
        (-1.0, -3.0, 1.0),  # real costs 2, fake beyond the margin: 0.5 * (2 + 0)
    ],
)
def test_hinge_discriminator_loss_known_values(real, fake, expected):
    logits_real = torch.full((2, 1, 3, 3), real)
    logits_fake = torch.full((2, 1, 3, 3), fake)
    assert hinge_discriminator_loss(logits_real, logits_fake).item() == pytest.approx(expected)


def test_hinge_discriminator_loss_averages_over_patches():
    logits_real = torch.tensor([[[[0.0, 2.0]]]])  # costs 1 and 0
    logits_fake = torch.tensor([[[[-1.0, 1.0]]]])  # costs 0 and 2
    assert hinge_discriminator_loss(logits_real, logits_fake).item() == pytest.approx(0.5 * (0.5 + 1.0))


def test_hinge_generator_loss_is_negative_mean_logit():
    assert hinge_generator_loss(torch.tensor([1.0, 3.0, -1.0])).item() == pytest.approx(-1.0)


def test_feature_matching_is_mean_l1_per_layer_and_stops_real_gradients():
    real = [torch.zeros(1, 2, 4, 4, requires_grad=True), torch.zeros(1, 4, 2, 2, requires_grad=True)]
    fake = [torch.full((1, 2, 4, 4), 0.5, requires_grad=True), torch.full((1, 4, 2, 2), -1.5, requires_grad=True)]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx((0.5 + 1.5) / 2)
    loss.backward()
    assert all(f.grad is not None for f in fake)
    assert all(r.grad is None for r in real)
    assert feature_matching_loss(fake, [f.detach().clone() for f in fake]).item() == 0.0


def test_adaptive_gan_weight_is_ratio_of_gradient_norms():
    last_layer = torch.randn(3, 4, requires_grad=True)
    rec = (2.0 * last_layer).sum()  # gradient 2 everywhere
    gan = (0.5 * last_layer).sum()  # gradient 0.5 everywhere
    weight = adaptive_gan_weight(rec, gan, last_layer)
    assert weight.item() == pytest.approx(4.0, rel=1e-3)
    assert not weight.requires_grad
    assert last_layer.grad is None  # measuring the weight must not accumulate gradients


def test_adaptive_gan_weight_is_capped():
    last_layer = torch.randn(2, requires_grad=True)
    weight = adaptive_gan_weight((last_layer * 1e9).sum(), (last_layer * 1e-9).sum(), last_layer, max_weight=50.0)
    assert weight.item() == 50.0


def test_reconstruction_loss_zero_for_identical_images_and_positive_otherwise():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 32, generator=generator)
    same = reconstruction_loss(image, image.clone(), ms_ssim_weight=0.1, ms_ssim_scales=2)
    assert same["mse"].item() == 0.0
    assert same["ms_ssim_loss"].item() == pytest.approx(0.0, abs=1e-5)
    noisy = (image + 0.1 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
    terms = reconstruction_loss(noisy, image, ms_ssim_weight=0.1, ms_ssim_scales=2)
    expected_mse = ((noisy - image) ** 2).mean().item()
    assert terms["mse"].item() == pytest.approx(expected_mse)
    assert terms["loss"].item() == pytest.approx(expected_mse + 0.1 * terms["ms_ssim_loss"].item())
    assert terms["ms_ssim_loss"].item() > 0.01


def test_reconstruction_loss_without_ms_ssim_is_mse():
    a, b = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    terms = reconstruction_loss(a, b, ms_ssim_weight=0.0, ms_ssim_scales=3)
    assert set(terms) == {"mse", "loss"}
    assert terms["loss"].item() == pytest.approx(0.25)
