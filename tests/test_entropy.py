"""Entropy coding: integer-derived probabilities, stage streams, static prior, golden bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqcodec.entropy.coder import StageDecoder, StageEncoder, probabilities_from_frequencies
from vqcodec.entropy.free_tail import limit_free_tails
from vqcodec.entropy.grid_coding import FREE_TAIL_LIMIT, decode_grid, encode_grid
from vqcodec.entropy.static_prior import FREQUENCY_TOTAL, StaticPrior


def skewed_prior(stages: int = 2, k: int = 16) -> StaticPrior:
    prior = StaticPrior(stages, k)
    counts = torch.stack([torch.arange(1, k + 1, dtype=torch.int64) ** (s + 1) for s in range(stages)])
    prior.fit(counts)
    return prior


def test_fit_gives_positive_integer_frequencies_summing_below_total():
    prior = StaticPrior(2, 8)
    prior.fit(torch.tensor([[0, 0, 5, 5, 0, 0, 0, 90], [1] * 8]))
    frequencies = prior.frequencies
    assert frequencies.dtype == torch.int64 and (frequencies >= 1).all()
    assert (frequencies.sum(dim=1) <= FREQUENCY_TOTAL).all()
    assert frequencies[0, 7] > frequencies[0, 2] > frequencies[0, 0]


def test_stage_stream_round_trip_with_shared_and_per_row_probabilities():
    rng = np.random.default_rng(0)
    shared = probabilities_from_frequencies(rng.integers(1, 100, 32))
    rows = probabilities_from_frequencies(rng.integers(1, 100, (50, 32)))
    first, second = rng.integers(0, 32, 200), rng.integers(0, 32, 50)
    encoder = StageEncoder()
    encoder.push(second, rows)  # last group first
    encoder.push(first, shared)
    decoder = StageDecoder(encoder.finish())
    assert np.array_equal(decoder.read(200, shared), first)
    assert np.array_equal(decoder.read(50, rows), second)
    assert decoder.exhausted()


def test_skewed_prior_spends_fewer_bits_than_uniform():
    prior = skewed_prior(1, 16)
    probabilities = prior.frequencies[0].double() / prior.frequencies[0].sum()
    symbols = torch.multinomial(probabilities, 4000, replacement=True, generator=torch.Generator().manual_seed(0))
    grid = symbols.numpy().reshape(1, 40, 100)
    skewed = sum(map(len, encode_grid(prior, grid)))
    uniform = sum(map(len, encode_grid(StaticPrior(1, 16), grid)))
    assert skewed < 0.95 * uniform
    assert uniform == pytest.approx(4000 * 4 / 8, rel=0.02)  # log2(16) = 4 bits per symbol


def test_grid_round_trip_and_stage_prefix():
    prior = skewed_prior(3, 16)
    grid = np.random.default_rng(2).integers(0, 16, (3, 5, 7))
    payloads = encode_grid(prior, grid)
    assert np.array_equal(decode_grid(prior, payloads, 5, 7, 16), grid)
    assert np.array_equal(decode_grid(prior, payloads[:1], 5, 7, 16), grid[:1])


def test_corrupt_payload_is_reported():
    prior = skewed_prior(1, 16)
    grid = np.random.default_rng(3).integers(0, 16, (1, 8, 8))
    payload = encode_grid(prior, grid)[0]
    with pytest.raises(ValueError):
        decode_grid(prior, [payload + b"\x01\x02\x03\x04"], 8, 8, 16)
    with pytest.raises(ValueError, match="32-bit words"):
        decode_grid(prior, [payload[:-1]], 8, 8, 16)


def test_golden_stream_bytes():
    """Fixed integers in, fixed bytes out: catches any change in probability derivation or
    in the coder that would break files written before it."""
    frequencies = np.array([1, 2, 3, 4, 5, 6, 7, 100], dtype=np.int64)
    symbols = np.array([7, 7, 0, 3, 7, 6, 5, 7, 7, 1, 2, 7, 4, 7, 7, 7])
    encoder = StageEncoder()
    encoder.push(symbols, probabilities_from_frequencies(frequencies))
    payload = encoder.finish()
    assert payload.hex() == GOLDEN_HEX
    decoded = StageDecoder(bytes.fromhex(GOLDEN_HEX)).read(16, probabilities_from_frequencies(frequencies))
    assert np.array_equal(decoded, symbols)


GOLDEN_HEX = "8e017d665c1a3d48"


def test_a_stage_may_leave_at_most_the_allowed_tail_of_zeros_to_the_empty_coder():
    prior = skewed_prior(1, 16)
    positions = FREE_TAIL_LIMIT + 2
    for zeros, refused in [(FREE_TAIL_LIMIT, False), (FREE_TAIL_LIMIT + 1, True)]:
        grid = np.zeros((1, 1, positions), dtype=np.int64)
        grid[0, 0, : positions - zeros] = 5
        payloads = encode_grid(prior, grid)
        if refused:
            with pytest.raises(ValueError, match=f"stage 1 payload runs out {zeros} indices"):
                decode_grid(prior, payloads, 1, positions, 16)
        else:
            assert np.array_equal(decode_grid(prior, payloads, 1, positions, 16), grid)
    tiny = np.zeros((1, 1, 1), dtype=np.int64)  # a single index 0 codes into no bytes at all
    assert encode_grid(prior, tiny) == [b""]
    with pytest.raises(ValueError, match="stage 1 payload runs out 1 indices"):
        decode_grid(prior, [b""], 1, 1, 16)


def test_limit_free_tails_gives_the_last_index_a_non_zero_codeword_and_requantizes_later_stages():
    prior = skewed_prior(2, 4)
    codebooks = [torch.eye(4) * 2.0, torch.eye(4)]  # [K, D]
    latent = torch.zeros(4, 3, 5)  # [D, h, w]
    latent[0] = 2.0  # exactly codeword 0 of the first stage everywhere; the zero residual ties at the second
    indices = np.zeros((2, 3, 5), dtype=np.int64)
    limited = limit_free_tails(indices, latent, codebooks, prior)
    changed = np.argwhere(limited != indices)
    assert [tuple(p) for p in changed if p[0] == 0] == [(0, 2, 4)]  # the first stage: only its last position
    assert limited[0, 2, 4] != 0 and limited[1, 2, 4] != 0
    for stage, payload in enumerate(encode_grid(prior, limited)):
        assert payload, f"stage {stage + 1} codes at least one bit"
    assert np.array_equal(decode_grid(prior, encode_grid(prior, limited), 3, 5, 4), limited)


def test_a_payload_ending_in_a_zero_word_is_named_as_corrupt():
    with pytest.raises(ValueError, match="ends in a zero word, which no encoder writes"):
        decode_grid(skewed_prior(1, 16), [b"\x07\x00\x00\x00" + bytes(4)], 2, 2, 16)
