"""Entropy coding: integer-derived probabilities, stage streams, static prior, golden bytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vqcodec.entropy.coder import StageDecoder, StageEncoder, probabilities_from_frequencies
from vqcodec.entropy.prior import FREQUENCY_TOTAL, StaticPrior
from vqcodec.entropy.stream import decode_grid, encode_grid


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
    assert decoder.finished_cleanly()


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
