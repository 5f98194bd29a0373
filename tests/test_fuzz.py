"""A short fuzzing run over read_header, unpack and decompress (both priors), seeded with
real streams and CRC-consistent mutations (tests/stream_fuzzer.py); the long run is
benchmarks/fuzz.py."""

from __future__ import annotations

import random

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.stream_fuzzer import Parts, allocation_bound, check, mutate, seed_streams, warm_up

TIME_LIMIT = 10.0  # seconds per input: a 256×256 decode takes well under one


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return seed_streams()


@pytest.fixture(scope="module")
def corpus(seeds) -> list[Parts]:
    parsed = [Parts.parse(stream) for stream in seeds.values()]
    warm_up(parsed, TIME_LIMIT)
    return parsed


def test_seeds_cover_both_priors_and_decode(seeds, corpus):
    assert {parts.fields["prior"] for parts in corpus} == {0, 1}
    for name, stream in seeds.items():
        if not name.startswith("retired"):
            assert set(check(stream, TIME_LIMIT).outcomes.values()) == {"ok"}, name


# Derandomized, so CI sees the same inputs every run; benchmarks/fuzz.py explores further.
@settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_streams_raise_only_bitstream_errors_in_bounded_time_and_memory(corpus, rng: random.Random):
    data, _ = mutate(rng, corpus)
    result = check(data, TIME_LIMIT)  # raises on any other exception or a hang
    assert result.rss_growth <= allocation_bound(data)
