"""Model pieces: shapes, residual quantizer behaviour, EMA codebook updates, config round trip."""

from __future__ import annotations

import torch

from vqcodec.model import CodecConfig, VQCodec
from vqcodec.model.quantizer import ResidualQuantizer

TINY = CodecConfig(
    width_fine=16, width_coarse=32, encoder_blocks=(1, 1), decoder_blocks=(1, 1), latent_dim=8, codebook_size=16, stages=3
)


def test_shapes_through_the_codec():
    model = VQCodec(TINY).eval()
    image = torch.rand(2, 3, 32, 48)
    indices = model.encode_indices(image)
    assert indices.shape == (2, 3, 4, 6) and indices.dtype == torch.int64
    assert model.decode_indices(indices[:, :2]).shape == (2, 3, 32, 48)
    out = model.train()(image, torch.tensor([1, 3]))
    assert out["reconstruction"].shape == image.shape


def test_each_stage_reduces_the_residual():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(stages=3, codebook_size=64, dim=4).train()
    latent = torch.randn(4, 4, 8, 8)
    quantizer(latent)  # k-means initialisation on this batch
    quantizer.eval()
    errors = [((quantizer.decode(quantizer.encode(latent, s)) - latent) ** 2).mean().item() for s in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_encode_matches_training_forward_indices():
    torch.manual_seed(1)
    quantizer = ResidualQuantizer(stages=2, codebook_size=16, dim=4).train()
    latent = torch.randn(2, 4, 4, 4)
    quantizer(latent)
    quantizer.eval()
    _, indices, _ = quantizer(latent)
    assert torch.equal(indices, quantizer.encode(latent, 2))


def test_quantizer_dropout_zeroes_later_stages():
    torch.manual_seed(2)
    quantizer = ResidualQuantizer(stages=3, codebook_size=16, dim=4).train()
    latent = torch.randn(2, 4, 4, 4)
    quantizer(latent)
    quantizer.eval()
    kept, indices, _ = quantizer(latent, torch.tensor([1, 3]))
    assert torch.allclose(kept[0], quantizer.decode(indices[:1, :1])[0], atol=1e-6)
    assert torch.allclose(kept[1], quantizer.decode(indices[1:, :3])[0], atol=1e-6)


def test_ema_moves_codewords_and_restarts_dead_codes():
    torch.manual_seed(3)
    quantizer = ResidualQuantizer(stages=1, codebook_size=8, dim=2).train()
    cluster = torch.randn(1, 2, 4, 4) * 0.01 + 5.0  # every vector near (5, 5)
    quantizer(cluster)
    stage = quantizer.stages[0]
    stage.codebook[1:] = -100.0  # far from the data: never chosen, so they go dead
    stage.ema_sum[1:] = -100.0
    for _ in range(300):
        quantizer(cluster)
    assert (stage.codebook - 5.0).abs().max() < 0.5  # all codes restarted onto the data


def test_config_json_round_trip():
    assert CodecConfig.from_json(TINY.to_json()) == TINY
