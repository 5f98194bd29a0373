"""Warm starts: a VQ-VAE run from trained weights keeps them, grown stages start from k-means,
and an init that does not fit the run's architecture is refused before any training."""

import dataclasses
from pathlib import Path

import pytest
import torch

from test_train import TINY, tiny_config, write_images
from vqcodec.model import VQCodec
from vqcodec.train.checkpoint import LATEST, WEIGHTS, load_checkpoint
from vqcodec.train.gan import add_realism_decoder
from vqcodec.train.loop import train_vqvae
from vqcodec.train.warm_start import grown, load_vqvae

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("warm")
    write_images(root / "images")
    train_vqvae(tiny_config(root, "run"))
    return root


def test_grown_codec_keeps_every_trained_part_and_adds_uninitialised_stages(trained):
    source = load_vqvae(trained / "run" / LATEST)
    model = grown(add_realism_decoder(source), dataclasses.replace(TINY, stages=4))
    assert list(model.decoders) == ["fidelity"]
    for key, value in source.state_dict().items():
        if not key.startswith("prior."):
            assert torch.equal(model.state_dict()[key], value), key
    assert [bool(model.quantizer.stage(s).initialized) for s in range(4)] == [True, True, False, False]
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(model.encode_indices(image, 2), source.encode_indices(image, 2))


@pytest.mark.parametrize("change", [dict(stages=1), dict(latent_dim=4), dict(codebook_size=32), dict(decoder_blocks=(2, 1))])
def test_grown_refuses_another_architecture_or_fewer_stages(change):
    with pytest.raises(ValueError, match="same architecture and at least as many stages"):
        grown(VQCodec(TINY), dataclasses.replace(TINY, **change))


def test_a_vqvae_run_from_weights_with_more_stages_trains_them_from_k_means(trained, tmp_path):
    config = tiny_config(trained, "grown", init_from=str(trained / "run" / WEIGHTS), model=dataclasses.replace(TINY, stages=3))
    model = train_vqvae(config)
    state = load_checkpoint(Path(config.out_dir) / LATEST)
    assert state["step"] == config.steps
    assert all(bool(model.quantizer.stage(s).initialized) for s in range(3))
    source = load_vqvae(trained / "run" / WEIGHTS)
    assert not torch.equal(model.quantizer.stage(0).codebook, source.quantizer.stage(0).codebook)  # it trained on


def test_a_vqvae_run_refuses_an_init_that_does_not_fit_before_writing_anything(trained, tmp_path):
    config = tiny_config(trained, "bad", init_from=str(trained / "run" / WEIGHTS), model=dataclasses.replace(TINY, latent_dim=4))
    with pytest.raises(ValueError, match="same architecture"):
        train_vqvae(config)
    assert not Path(config.out_dir).exists()
