"""Latent refinement: never worse than the encoder's latent, windows that cover any grid,
streams that decode as any other, and bounds on the step count."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import vqcodec
from tests.conftest import SAMPLE
from vqcodec import coding, refine, tiling, zoo
from vqcodec.cli import main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def codec():
    return zoo.load().codec


@pytest.fixture(scope="module")
def crop(sample_crop) -> np.ndarray:
    return np.asarray(sample_crop)


def decoded_error(codec, rgb: np.ndarray, latent: torch.Tensor, stages: int) -> float:
    """MSE (0..255 scale) of `rgb` decoded from the nearest codewords of `latent`."""
    indices = codec.quantizer.encode(latent[None], stages)
    decoded = codec.decode_indices(indices)[0, :, : rgb.shape[0], : rgb.shape[1]].permute(1, 2, 0).numpy() * 255
    return float(np.mean((decoded - rgb) ** 2))


def test_no_steps_keep_the_encoders_latent(codec, crop):
    latent = coding.latent_of(codec, crop)
    assert torch.equal(refine.refine_latent(codec, crop, latent, 2, 0, coding.CPU), latent)


@pytest.mark.parametrize("window", [refine.WINDOW_TOKENS, 5])  # one window; windows with margins over the grid
def test_refined_latent_decodes_closer_to_the_image(codec, crop, window, monkeypatch):
    monkeypatch.setattr(refine, "WINDOW_TOKENS", window)
    latent = coding.latent_of(codec, crop)
    refined = refine.refine_latent(codec, crop, latent, 4, 4, coding.CPU)
    assert refined.shape == latent.shape and not torch.equal(refined, latent)
    assert decoded_error(codec, crop, refined, 4) < 0.95 * decoded_error(codec, crop, latent, 4)


def test_a_refined_stream_is_an_ordinary_stream(crop):
    plain, refined = vqcodec.compress(crop, stages=4, refine=0), vqcodec.compress(crop, stages=4, refine=4)
    payload_fields = ("stage_lengths", "stage_crcs")
    refined_header = vqcodec.read_header(refined)
    same_payloads = {name: getattr(refined_header, name) for name in payload_fields}
    assert refined != plain and refined_header == dataclasses.replace(vqcodec.read_header(plain), **same_payloads)
    assert np.asarray(vqcodec.decompress(refined)).shape == crop.shape


def test_a_tiled_image_is_refined_tile_by_tile(monkeypatch):
    with Image.open(SAMPLE) as image:
        rgb = np.asarray(image.convert("RGB").crop((200, 100, 456, 300)))  # 32×25 tokens
    monkeypatch.setattr(tiling, "TILE_TOKENS", 16)  # four tiles
    data = vqcodec.compress(rgb, stages=1, refine=2)
    assert vqcodec.read_header(data).tile == 16 and vqcodec.decompress(data).size == (256, 200)


@pytest.mark.parametrize("steps", [-1, 1001, 2.5, True])
def test_step_counts_out_of_bounds_are_refused(crop, steps):
    with pytest.raises(ValueError, match="refine must be an integer in 0..1000"):
        vqcodec.compress(crop, refine=steps)


def test_command_line_refine_option(tmp_path, sample_crop):
    sample_crop.save(tmp_path / "a.png")
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "a.png"), str(tmp_path / "a.vqc"), "--refine", "2"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "a.vqc").size == (128, 96)
    assert CliRunner().invoke(main, ["encode", str(tmp_path / "a.png"), str(tmp_path / "b.vqc"), "--refine", "-1"]).exit_code == 2
