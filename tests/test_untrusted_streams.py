"""Streams from untrusted sources: headers that claim more than their payloads hold, and the
claim bound (`max_pixels`), through the public API."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from tests.conftest import SAMPLE
from vqcodec import BitstreamError, bitstream

# A flat colour whose single index at one stage is codeword 0 under the static prior and the
# nearest codewords: coded from the coder's empty state, that index costs no bits at all.
ZERO_INDEX_COLOUR = (95, 75, 95)


def forge(stream: bytes, *, width: int, height: int, payloads: list[bytes] | None = None) -> bytes:
    """`stream` with another claimed size (and payloads), every length and CRC consistent."""
    header, alpha, real = bitstream.unpack(stream)
    return bitstream.pack(
        model_id=header.model_id,
        weights_hash=header.weights_hash,
        prior=header.prior,
        prior_hash=header.prior_hash,
        width=width,
        height=height,
        mode=header.mode,
        stride=header.stride,
        codebook_size=header.codebook_size,
        alpha=alpha,
        stage_payloads=real if payloads is None else payloads,
    )


@pytest.mark.parametrize("prior", ["context", "static"])
def test_empty_payloads_under_a_huge_claim_fail_fast_and_small(sample_crop, prior):
    stream = vqcodec.compress(sample_crop, stages=2, prior=prior, rdo=0)
    bomb = forge(stream, width=8192, height=8192, payloads=[b"", b""])
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match=r"stage 1 payload runs out 1048576 indices .* 1024×1024 grid"):
            vqcodec.decompress(bomb, max_pixels=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20  # the image would need about 5 GB


def test_a_real_payload_under_a_larger_claim_is_refused():
    with Image.open(SAMPLE) as image:
        stream = vqcodec.compress(image, stages=1, prior="static")  # 768×512
    with pytest.raises(BitstreamError, match="stage 1 payload"):
        vqcodec.decompress(forge(stream, width=8192, height=8192), max_pixels=None)


def test_a_zero_length_stage_of_a_non_empty_grid_is_refused(sample_stream):
    _, _, payloads = bitstream.unpack(sample_stream)
    for stage in range(len(payloads)):
        emptied = payloads[:stage] + [b""] + payloads[stage + 1 :]
        with pytest.raises(BitstreamError, match=f"stage {stage + 1} payload runs out"):
            vqcodec.decompress(forge(sample_stream, width=128, height=96, payloads=emptied))


def test_images_whose_indices_end_in_codeword_0_still_code_into_streams_that_decode():
    """The encoder never leaves a stage to the coder's free zeros beyond what decoders accept."""
    for width, height in [(1, 1), (7, 5)]:
        flat = np.empty((height, width, 3), np.uint8)
        flat[:] = ZERO_INDEX_COLOUR
        for prior in ("static", "context"):
            stream = vqcodec.compress(flat, prior=prior, rdo=0)
            assert all(bitstream.unpack(stream)[2]), "every stage codes at least one bit"
            decoded = np.asarray(vqcodec.decompress(stream)).astype(int)
            assert np.abs(decoded - ZERO_INDEX_COLOUR).mean() < 12


def test_claims_above_max_pixels_are_refused_from_the_header_alone(sample_stream):
    header = vqcodec.read_header(sample_stream)
    assert header.pixels == 128 * 96
    small = vqcodec.compress(np.zeros((48, 64, 3), np.uint8))
    assert vqcodec.read_header(small).pixels == 3072
    with pytest.raises(BitstreamError, match=r"64×48 image \(3,072 pixels\), more than max_pixels=1,000"):
        vqcodec.decompress(small, max_pixels=1000)
    header_only = small[: vqcodec.read_header(small).header_size]  # no payload: refused before it is needed
    with pytest.raises(BitstreamError, match="max_pixels"):
        vqcodec.decompress(header_only, max_pixels=1000)
    assert vqcodec.decompress(small, max_pixels=3072).size == (64, 48)
    with pytest.raises(ValueError, match="max_pixels must be an integer"):
        vqcodec.decompress(small, max_pixels=0)


def test_the_default_claim_bound_refuses_what_the_format_allows(sample_stream):
    from vqcodec.api import DEFAULT_MAX_PIXELS

    claim = forge(sample_stream, width=8192, height=8192, payloads=[b""] * 4)
    with pytest.raises(BitstreamError, match=f"max_pixels={DEFAULT_MAX_PIXELS:,}"):
        vqcodec.decompress(claim)


def test_decompress_file_takes_the_claim_bound(tmp_path: Path, sample_stream):
    source = tmp_path / "in.vqc"
    source.write_bytes(sample_stream)
    with pytest.raises(BitstreamError, match="max_pixels"):
        vqcodec.decompress_file(source, tmp_path / "out.png", max_pixels=100)
    assert not (tmp_path / "out.png").exists()
