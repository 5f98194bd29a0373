"""Rate-aware training: the rate term prices indices as the frozen context prior codes them,
its gradient reaches the encoder's latent (and only it), and a run with it trains and
resumes like any other."""

import math

import pytest
import torch

from test_train import TINY, tiny_config, train_rows, write_images
from vqcodec.entropy.context import ContextPrior, PriorConfig
from vqcodec.entropy.prior_file import save_prior_file
from vqcodec.model import VQCodec
from vqcodec.train.checkpoint import LATEST, load_checkpoint
from vqcodec.train.loop import train_vqvae
from vqcodec.train.rate import RateTerm, coding_group_masks, soft_assignment, stage_residuals

PRIOR = PriorConfig(stages=TINY.stages, codebook_size=TINY.codebook_size, width=8, blocks=1, schedule=("pyramid", "all"))


def tiny_prior() -> ContextPrior:
    torch.manual_seed(3)
    return ContextPrior(PRIOR).eval()


def encoded(seed: int = 0) -> tuple[VQCodec, torch.Tensor, torch.Tensor]:
    """A tiny codec (codebooks set from its own latents) and a batch's latent and indices."""
    torch.manual_seed(seed)
    codec = VQCodec(TINY)
    codec.train()
    codec(torch.rand(4, 3, 32, 32))  # k-means initialises the codebooks on this batch
    codec.eval()
    latent = codec.encoder(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed + 1)))
    return codec, latent, codec.quantizer.encode(latent.detach(), TINY.stages)


def test_soft_assignment_is_a_distribution_that_sharpens_onto_the_nearest_codeword():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    residual = torch.tensor([[0.6, 0.0], [0.3, 0.1]])
    for share in (2.0, 1e-3):
        q = soft_assignment(residual, codebook, share)
        assert torch.allclose(q.sum(1), torch.ones(2))
        assert q.argmax(1).tolist() == [1, 0]
    assert soft_assignment(residual, codebook, 1e-3).max(1).values.min() > 0.999
    assert soft_assignment(residual, codebook, 2.0).max(1).values.max() < 0.9


def test_stage_residuals_are_what_each_stage_quantizes():
    codec, latent, indices = encoded()
    residuals = stage_residuals(latent, codec.quantizer, indices)
    first = codec.quantizer.stages[0].codebook[indices[:, 0].reshape(-1)]
    assert torch.allclose(residuals[0], latent.permute(0, 2, 3, 1).reshape(-1, TINY.latent_dim))
    assert torch.allclose(residuals[1], residuals[0] - first)


def test_a_sharp_rate_term_is_the_priors_code_length_of_the_indices_each_sample_codes():
    codec, latent, indices = encoded()
    prior = tiny_prior()
    rate = RateTerm(prior, TINY, temperature_share=1e-4)
    keep = torch.tensor([1, 2, 1, 2])
    bpp = rate(latent, indices, codec.quantizer, keep, torch.Generator().manual_seed(5))
    # The same coding groups, drawn in the same order, scored sample by sample by the prior's
    # own training loss: each sample's mean code length over its group, for the stages it codes.
    generator, expected = torch.Generator().manual_seed(5), 0.0
    for s in range(TINY.stages):
        known = torch.zeros(indices.shape, dtype=torch.bool)
        known[:, :s] = True
        known[:, s], predict = coding_group_masks(PRIOR.schedule[s], 4, *indices.shape[2:], generator)
        for b in range(4):
            if keep[b] > s:
                one = slice(b, b + 1)
                expected += prior(indices[one], known[one], torch.tensor([s]), predict[one]).mean().item() / math.log(2) / 4
    assert bpp.item() == pytest.approx(expected / TINY.stride**2, rel=1e-4)


def test_pyramid_groups_count_by_their_size():
    known, predict = coding_group_masks("pyramid", 4000, 8, 8, torch.Generator().manual_seed(0))
    first_group = known.sum(dim=(1, 2)) == 0  # the context-free group: 1/16 of the grid
    assert (predict[first_group].sum(dim=(1, 2)) == 4).all()
    assert first_group.float().mean().item() == pytest.approx(1 / 16, abs=0.015)
    assert (known & predict).sum() == 0


def test_rate_gradient_reaches_the_latent_and_lowers_the_rate_but_leaves_the_prior_alone():
    codec, latent, indices = encoded()
    prior = tiny_prior()
    rate = RateTerm(prior, TINY)
    latent = latent.detach().requires_grad_(True)
    keep = torch.full((4,), TINY.stages)

    def price() -> torch.Tensor:
        return rate(latent, indices, codec.quantizer, keep, torch.Generator().manual_seed(5))

    before = price()
    before.backward()
    assert latent.grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())
    with torch.no_grad():
        latent -= 0.05 * latent.grad / latent.grad.norm()
    assert price() < before


def test_stages_a_sample_does_not_code_cost_nothing():
    codec, latent, indices = encoded()
    rate = RateTerm(tiny_prior(), TINY)
    price = {
        n: rate(latent, indices, codec.quantizer, torch.full((4,), n), torch.Generator().manual_seed(5)).item() for n in (1, 2)
    }
    assert 0 < price[1] < price[2]


def test_a_prior_for_another_codebook_is_refused():
    other = ContextPrior(PriorConfig(stages=2, codebook_size=32, width=8, blocks=1, schedule=("all", "all")))
    with pytest.raises(ValueError, match="codewords"):
        RateTerm(other, TINY)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"rate_weight": 0.01}, "needs phase=vqvae and rate_prior"),
        ({"rate_weight": 0.01, "rate_prior": "p.safetensors", "phase": "vqgan"}, "needs phase=vqvae"),
        ({"rate_weight": -1.0, "rate_prior": "p.safetensors"}, "must be ≥ 0"),
    ],
)
def test_rate_options_a_run_cannot_use_are_refused(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, "run", **override)


def test_a_rate_aware_run_logs_its_rate_and_resumes_identically(tmp_path):
    write_images(tmp_path / "images")
    save_prior_file(tiny_prior(), tmp_path / "prior.safetensors")
    options = dict(rate_weight=0.05, rate_prior=str(tmp_path / "prior.safetensors"))
    straight = train_vqvae(tiny_config(tmp_path, "straight", **options))
    train_vqvae(tiny_config(tmp_path, "split", steps=2, **options))
    resumed = train_vqvae(tiny_config(tmp_path, "split", **options), load_checkpoint(tmp_path / "split" / LATEST))
    rows = train_rows(tmp_path / "straight")
    assert rows == train_rows(tmp_path / "split")
    assert all(row["train/rate_bpp"] > 0 for row in rows.values())
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_missing_or_foreign_rate_prior_is_a_clear_error(tmp_path):
    write_images(tmp_path / "images")
    (tmp_path / "notes.safetensors").write_text("not a prior")
    with pytest.raises(FileNotFoundError):
        train_vqvae(tiny_config(tmp_path, "run", rate_weight=0.05, rate_prior=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ValueError, match="not a vqcodec-context-prior file"):
        train_vqvae(tiny_config(tmp_path, "run", rate_weight=0.05, rate_prior=str(tmp_path / "notes.safetensors")))


def test_the_rate_term_changes_what_the_encoder_learns(tmp_path):
    write_images(tmp_path / "images")
    save_prior_file(tiny_prior(), tmp_path / "prior.safetensors")
    blind = train_vqvae(tiny_config(tmp_path, "blind", steps=2))
    aware = train_vqvae(tiny_config(tmp_path, "aware", steps=2, rate_weight=1.0, rate_prior=str(tmp_path / "prior.safetensors")))
    assert not torch.equal(blind.encoder.stem[1].weight, aware.encoder.stem[1].weight)
