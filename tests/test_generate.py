"""Generation and inpainting: determinism per seed, untouched tokens/pixels outside the mask,
and clear errors for bad arguments. Tiny untrained models keep this fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vqcodec.entropy.context import ContextPrior, PriorConfig
from vqcodec.model import CodecConfig, VQCodec
from vqcodec.sampling import generate_image, inpaint_image, inpaint_tokens, sample_tokens

PRIOR = PriorConfig(stages=2, codebook_size=32, width=16, blocks=1, schedule=("quad", "checkerboard"))
CODEC = CodecConfig(
    width_fine=8, width_coarse=16, encoder_blocks=(1, 1), decoder_blocks=(1, 1), latent_dim=8, codebook_size=32, stages=2
)


@pytest.fixture(scope="module")
def prior() -> ContextPrior:
    torch.manual_seed(0)
    return ContextPrior(PRIOR).eval()


@pytest.fixture(scope="module")
def codec() -> VQCodec:
    torch.manual_seed(0)
    return VQCodec(CODEC).eval()


def test_same_seed_gives_the_same_grid_and_another_seed_another(prior):
    first = sample_tokens(prior, 2, 6, 7, seed=3, steps=3, temperature=1.0)
    assert first.shape == (2, 6, 7) and first.dtype == torch.int64
    assert 0 <= int(first.min()) and int(first.max()) < 32
    assert torch.equal(first, sample_tokens(prior, 2, 6, 7, seed=3, steps=3, temperature=1.0))
    assert not torch.equal(first, sample_tokens(prior, 2, 6, 7, seed=4, steps=3, temperature=1.0))


def test_inpainting_keeps_unmasked_tokens_and_resamples_masked_ones(prior):
    tokens = torch.randint(0, 32, (2, 8, 8), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:6, 3:7] = True
    out = inpaint_tokens(prior, tokens, mask, seed=0, steps=2)
    assert torch.equal(out[:, ~mask], tokens[:, ~mask])
    assert not torch.equal(out[:, mask], tokens[:, mask])
    assert torch.equal(out, inpaint_tokens(prior, tokens, mask, seed=0, steps=2))


def test_per_stage_mask_leaves_other_stages_alone(prior):
    tokens = torch.randint(0, 32, (2, 5, 5), generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 5, 5, dtype=torch.bool)
    mask[1] = True
    out = inpaint_tokens(prior, tokens, mask, seed=0, steps=2)
    assert torch.equal(out[0], tokens[0])


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"temperature": 0.0}, {"temperature": float("nan")}, {"seed": -1}])
def test_bad_sampling_arguments_raise(prior, kwargs):
    arguments = {"seed": 0, "steps": 2, "temperature": 1.0, **kwargs}
    with pytest.raises(ValueError):
        sample_tokens(prior, 1, 4, 4, **arguments)


def test_bad_grids_and_masks_raise(prior):
    with pytest.raises(ValueError):
        sample_tokens(prior, 3, 4, 4, seed=0)
    with pytest.raises(ValueError):
        sample_tokens(prior, 1, 0, 4, seed=0)
    tokens = torch.zeros(2, 4, 4, dtype=torch.int64)
    with pytest.raises(ValueError):
        inpaint_tokens(prior, tokens, torch.ones(4, 5, dtype=torch.bool), seed=0)
    with pytest.raises(ValueError):
        inpaint_tokens(prior, tokens + 32, torch.ones(4, 4, dtype=torch.bool), seed=0)


def test_generated_image_has_the_requested_size_and_is_deterministic(codec, prior):
    image = generate_image(codec, prior, 37, 21, seed=5, steps=2)
    assert image.size == (37, 21) and image.mode == "RGB"
    again = generate_image(codec, prior, 37, 21, seed=5, steps=2)
    assert np.array_equal(np.asarray(image), np.asarray(again))


def test_inpainted_image_equals_the_reconstruction_outside_the_mask_footprint(codec, prior):
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (27, 35, 3), dtype=np.uint8))
    mask = np.zeros((27, 35), dtype=np.uint8)
    mask[9:14, 17:20] = 255  # inside token cells rows 1, cols 2
    out = np.asarray(inpaint_image(codec, prior, picture, Image.fromarray(mask), seed=1, steps=2)).astype(int)
    padded = torch.nn.functional.pad(
        torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].float() / 255, (0, 5, 0, 5), mode="replicate"
    )
    reconstruction = codec.decode_indices(codec.encode_indices(padded))[0, :, :27, :35]
    expected = (reconstruction * 255).round().permute(1, 2, 0).numpy().astype(int)
    footprint = np.zeros((27, 35), dtype=bool)
    footprint[8:16, 16:24] = True
    assert out.shape == (27, 35, 3)
    np.testing.assert_array_equal(out[~footprint], expected[~footprint])
    assert not np.array_equal(out[footprint], expected[footprint])


def test_inpainting_rejects_mismatched_or_empty_masks(codec, prior):
    picture = Image.new("RGB", (16, 16), (90, 120, 30))
    with pytest.raises(ValueError, match="mask is"):
        inpaint_image(codec, prior, picture, Image.new("L", (8, 16), 255), seed=0)
    with pytest.raises(ValueError, match="no pixels"):
        inpaint_image(codec, prior, picture, Image.new("L", (16, 16), 0), seed=0)


def test_the_api_functions_survive_their_own_first_call():
    # A submodule named like a package-level function would replace it on first import.
    import vqcodec

    vqcodec.generate(8, 8, seed=0)
    vqcodec.inpaint(np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 255, np.uint8), seed=0)
    assert callable(vqcodec.generate) and callable(vqcodec.inpaint)
