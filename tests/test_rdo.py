"""Rate–distortion-optimised quantization: λ = 0 is the plain encoder, the rate term trades
latent error for code length as promised, the result does not depend on chunking, and the
API's `rdo` option keeps streams decodable, prefix-consistent and smaller."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import vqcodec
from test_context_prior import SMALL, formula_prior
from vqcodec import zoo
from vqcodec.bitstream import unpack
from vqcodec.entropy.grid_coding import decode_grid, encode_grid
from vqcodec.entropy.rdo import code_lengths, quantize_for_rate
from vqcodec.entropy.static_prior import StaticPrior
from vqcodec.model.quantizer import ResidualQuantizer

K, D, H, W = SMALL.codebook_size, 4, 9, 11


def quantizer_and_latent(seed: int = 0) -> tuple[ResidualQuantizer, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    quantizer = ResidualQuantizer(SMALL.stages, K, D)
    for stage, scale in zip(quantizer.stages, (1.0, 0.3)):
        stage.codebook.copy_(torch.randn(K, D, generator=generator) * scale)
    return quantizer, torch.randn(D, H, W, generator=generator)


def skewed_static_prior() -> StaticPrior:
    prior = StaticPrior(SMALL.stages, K)
    prior.fit(torch.arange(1, K + 1, dtype=torch.float64).square().expand(SMALL.stages, K))
    return prior


def codebooks(quantizer: ResidualQuantizer) -> list[torch.Tensor]:
    return quantizer.codebooks()


def stage_bits(prior, indices: np.ndarray, stage: int) -> float:
    """Code length in bits of one stage's indices under `prior`, in its coding order."""
    known, total = np.zeros(indices.shape, dtype=bool), 0.0
    for s, mask in prior.groups(*indices.shape):
        if s == stage:
            lengths = code_lengths(prior.group_coder(indices, known, s)(np.flatnonzero(mask)))
            total += float(lengths.expand(int(mask.sum()), -1).gather(1, torch.from_numpy(indices[s][mask])[:, None]).sum())
        known[s] |= mask
    return total


def stage_error(quantizer: ResidualQuantizer, latent: torch.Tensor, indices: np.ndarray, stages: int) -> float:
    decoded = quantizer.decode(torch.from_numpy(indices[None, :stages]))[0]
    return float((decoded - latent).square().sum())


@pytest.mark.parametrize("prior", [formula_prior(), skewed_static_prior()], ids=["context", "static"])
def test_zero_lambda_is_the_nearest_codeword_encoder(prior):
    quantizer, latent = quantizer_and_latent()
    plain = quantizer.encode(latent[None], SMALL.stages)[0].numpy()
    assert np.array_equal(quantize_for_rate(latent, codebooks(quantizer), prior, [0.0, 0.0]), plain)


def test_rate_term_trades_error_for_bits_and_saturates_at_the_likeliest_symbol():
    quantizer, latent = quantizer_and_latent(1)
    prior = skewed_static_prior()  # context-free: each position's choice is exactly optimal
    plain = quantize_for_rate(latent, codebooks(quantizer), prior, [0.0, 0.0])
    traded = quantize_for_rate(latent, codebooks(quantizer), prior, [0.5, 0.0])
    assert stage_bits(prior, traded, 0) < stage_bits(prior, plain, 0)
    assert stage_error(quantizer, latent, traded, 1) > stage_error(quantizer, latent, plain, 1)
    left_over = (latent[None] - quantizer.decode(torch.from_numpy(traded[None, :1])))[0].permute(1, 2, 0).reshape(-1, D)
    assert np.array_equal(traded[1].reshape(-1), quantizer.stages[1].nearest(left_over).numpy())  # λ = 0: nearest to what is left
    saturated = quantize_for_rate(latent, codebooks(quantizer), prior, [1e6, 1e6])
    assert (saturated == K - 1).all()  # the most frequent symbol of the fitted counts


def test_context_rdo_saves_bits_and_decodes_exactly():
    quantizer, latent = quantizer_and_latent(2)
    prior = formula_prior()
    plain = quantize_for_rate(latent, codebooks(quantizer), prior, [0.0, 0.0])
    traded = quantize_for_rate(latent, codebooks(quantizer), prior, [0.3, 0.3])
    assert sum(map(len, encode_grid(prior, traded))) < sum(map(len, encode_grid(prior, plain)))
    assert np.array_equal(decode_grid(prior, encode_grid(prior, traded), H, W, K), traded)


@torch.no_grad()
def test_lookahead_term_is_what_a_candidate_adds_to_its_later_neighbours_logits():
    from vqcodec.entropy.rdo import _later_neighbour_bits

    prior, guess = formula_prior(), np.random.default_rng(5).integers(0, K, (H, W))
    p = (4, 5)
    pending = np.ones((H, W), dtype=bool)
    pending[p] = False
    saved = _later_neighbour_bits(prior, 0, guess, pending)(np.array([p[0] * W + p[1]]))[0]  # [K] bits
    neighbours = [(p[0] + dy, p[1] + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    where = tuple(torch.tensor(axis) for axis in zip(*[(0, i, j) for i, j in neighbours]))
    guessed = torch.tensor([guess[i, j] for i, j in neighbours])

    def neighbours_logits(candidate: int, known_there: bool) -> float:
        """Sum over the 8 neighbours of the logit of their guessed token, the long way."""
        tokens, known = torch.from_numpy(guess.copy())[None, None], torch.from_numpy(pending.copy())[None, None]
        tokens[0, 0, p[0], p[1]], known[0, 0, p[0], p[1]] = candidate, known_there
        return float(prior.neighbour_logits_at(tokens, known, 0, where)[torch.arange(8), guessed].sum())

    bits_per_unit = 2.0**-SMALL.logit_bits / np.log(2)
    tolerance = 8 * bits_per_unit  # each neighbour's sum is floored to a whole unit
    assert float(saved.abs().max()) > 10 * tolerance
    for candidate in (0, 7, K - 1):
        added = (neighbours_logits(candidate, True) - neighbours_logits(candidate, False)) * bits_per_unit
        assert abs(float(saved[candidate]) - added) <= tolerance


def test_lookahead_changes_the_choice():
    quantizer, latent = quantizer_and_latent(4)
    with_it = quantize_for_rate(latent, codebooks(quantizer), formula_prior(), [0.5, 0.5])
    without = quantize_for_rate(latent, codebooks(quantizer), formula_prior(), [0.5, 0.5], lookahead=False)
    assert not np.array_equal(with_it, without)


def test_result_does_not_depend_on_chunking_or_touch_the_latent():
    quantizer, latent = quantizer_and_latent(3)
    before = latent.clone()
    whole = quantize_for_rate(latent, codebooks(quantizer), formula_prior(), [0.2, 0.1])
    chunked = quantize_for_rate(latent, codebooks(quantizer), formula_prior(), [0.2, 0.1], chunk_rows=7)
    assert np.array_equal(whole, chunked) and torch.equal(latent, before)


@pytest.mark.parametrize("lambdas", [[0.1], [0.1, -1.0], [0.1, float("nan")]])
def test_bad_lambdas_are_refused(lambdas):
    quantizer, latent = quantizer_and_latent()
    with pytest.raises(ValueError, match="λ"):
        quantize_for_rate(latent, codebooks(quantizer), formula_prior(), lambdas)


def test_api_rdo_gives_smaller_decodable_prefix_consistent_files(sample_crop):
    plain = vqcodec.compress(sample_crop, rdo=0)
    default = vqcodec.compress(sample_crop)
    stronger = vqcodec.compress(sample_crop, rdo=4)
    assert len(stronger) < len(default) < len(plain)
    original = np.asarray(sample_crop, dtype=np.float64)
    psnr = {
        name: 10 * np.log10(255**2 / np.mean((np.asarray(vqcodec.decompress(data), dtype=np.float64) - original) ** 2))
        for name, data in (("plain", plain), ("default", default))
    }
    # Bits for latent error: the pixels of one image may come out either side of the nearest
    # codewords' (on Kodak 0.06-0.30 dB lower on average), never far from them.
    assert abs(psnr["default"] - psnr["plain"]) < 0.5
    two = vqcodec.compress(sample_crop, stages=2)  # stage s is chosen from stages < s only
    assert unpack(two)[2] == unpack(default)[2][:2]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rdo": -1}, "rdo"),
        ({"rdo": float("nan")}, "rdo"),
        ({"rdo": 17}, "rdo"),
        ({"rdo": True}, "rdo"),
        ({"rdo": 1, "prior": "static"}, "context prior"),
        ({"rdo": 1, "untuned": True}, "no tuned rdo"),
    ],
)
def test_api_refuses_bad_rdo(kwargs, message, sample_crop, monkeypatch):
    if kwargs.pop("untuned", False):  # a model without tuned λ
        untuned = replace(zoo.load_model(), rdo_lambdas=())
        monkeypatch.setattr(zoo, "load_model", lambda *args, **options: untuned)
    with pytest.raises(ValueError, match=message):
        vqcodec.compress(sample_crop, **kwargs)


def test_static_prior_encodes_without_rdo_by_default(sample_crop):
    assert vqcodec.compress(sample_crop, prior="static") == vqcodec.compress(sample_crop, prior="static", rdo=0)


def test_shipped_encoder_gets_a_fifth_off_the_static_prior_at_every_stage_count(sample_crop):
    from vqcodec.imaging import prepare_image, to_padded_tensor

    loaded = zoo.load_model()
    pixels = to_padded_tensor(prepare_image(sample_crop).rgb, loaded.codec.config.stride)
    with torch.inference_mode():
        latent = loaded.codec.encoder(pixels)[0]
    codebooks = loaded.codec.quantizer.codebooks()
    savings = {}
    for name, lambdas in (("nearest", [0.0] * len(codebooks)), ("shipped", loaded.rdo_lambdas)):
        indices = quantize_for_rate(latent, codebooks, loaded.context_prior, lambdas)
        context, static = (
            np.cumsum([len(p) for p in encode_grid(prior, indices)]) for prior in (loaded.context_prior, loaded.codec.prior)
        )
        savings[name] = 1 - context / static
    assert (savings["shipped"] >= 0.2).all() and (savings["shipped"] > savings["nearest"]).all()
