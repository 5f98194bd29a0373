"""LPIPS from a local weights file: loading, refusal of other files, and the distance's
basic properties (random weights stand in for the pretrained ones, which are not shipped)."""

import pytest
import torch
from safetensors.torch import save_file

from vqcodec.train.lpips import LPIPS, load_lpips


def random_lpips() -> LPIPS:
    """LPIPS with random weights (seed 0), heads made non-negative as pretrained ones are."""
    torch.manual_seed(0)
    network = LPIPS()
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if name.startswith("lin"):
                parameter.abs_()
    return network


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lpips") / "lpips_vgg.safetensors"
    save_file({k: v.contiguous() for k, v in random_lpips().state_dict().items()}, path)
    return path


def test_distance_is_zero_for_equal_images_and_grows_with_the_difference(weights_file):
    lpips = load_lpips(weights_file)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert lpips(images, images).item() == 0
    near = lpips(images, (images + 0.02).clamp(0, 1))
    far = lpips(images, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)))
    assert 0 < near < far
    assert torch.allclose(lpips(images, images.flip(-1)), lpips(images.flip(-1), images))


def test_frozen_network_passes_gradients_to_the_images_only(weights_file):
    lpips = load_lpips(weights_file)
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    lpips(images, torch.rand(1, 3, 32, 32)).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in lpips.parameters())
    assert not lpips.training


def test_missing_or_foreign_files_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not download"):
        load_lpips(tmp_path / "absent.pt")
    foreign = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not an LPIPS-VGG weights file"):
        load_lpips(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not an LPIPS weights file"):
        load_lpips(garbage)
