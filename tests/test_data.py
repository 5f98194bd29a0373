"""Training data: device-resident crops follow the semantics of the DataLoader crops (crop
size, uniform image and position, flips, upscaling) from one uint8 copy of the images."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqcodec.train.data import RandomCrops, ResidentCrops, load_rgb


def write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    """Noise images of the given (width, height), as PNG (lossless: pixels compare exactly)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = []
    for i, (width, height) in enumerate(sizes):
        files.append(folder / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(files[-1])
    return files


def crop_origins(images: list[np.ndarray], patch: np.ndarray) -> set[tuple[int, int, int, bool]]:
    """Every (image, top, left, flipped) whose crop equals `patch` `[c,c,3]` uint8."""
    c = patch.shape[0]
    found = set()
    for i, image in enumerate(images):
        for top, left in itertools.product(range(image.shape[0] - c + 1), range(image.shape[1] - c + 1)):
            window = image[top : top + c, left : left + c]
            for flipped, candidate in ((False, window), (True, window[:, ::-1])):
                if np.array_equal(candidate, patch):
                    found.add((i, top, left, flipped))
    return found


def as_uint8(batch: torch.Tensor) -> np.ndarray:
    """`[B,3,c,c]` float in [0,1] → `[B,c,c,3]` uint8."""
    return (batch * 255).round().byte().permute(0, 2, 3, 1).numpy()


def test_resident_crops_are_crops_of_the_images_with_and_without_flips(tmp_path):
    files = write_images(tmp_path, [(9, 7), (6, 11), (5, 3)])  # the last is upscaled to crop 4
    crops = ResidentCrops(files, crop=4, device=torch.device("cpu"))
    images = [load_rgb(path, 4) for path in files]
    assert images[2].shape[:2] == (4, 7)
    batch = crops.batch(64, torch.Generator().manual_seed(0))
    assert batch.shape == (64, 3, 4, 4) and batch.dtype == torch.float32
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    origins = [crop_origins(images, patch) for patch in as_uint8(batch)]
    assert all(origins), "every crop is a window of one image, flipped or not"
    assert {o[3] for found in origins for o in found} == {False, True}
    assert {o[0] for found in origins for o in found} == {0, 1, 2}


def test_resident_crops_hold_one_uint8_copy_of_the_images(tmp_path):
    files = write_images(tmp_path, [(9, 7), (6, 11), (5, 3)])
    crops = ResidentCrops(files, crop=4, device=torch.device("cpu"))
    pixels = sum(load_rgb(path, 4).shape[0] * load_rgb(path, 4).shape[1] for path in files)
    assert crops.pixels.dtype == torch.uint8 and crops.pixels.shape == (pixels, 3)
    assert len(crops) == 3


def test_resident_crop_positions_images_and_flips_are_uniform(tmp_path):
    """Same draw as RandomCrops: image, top, left and flip each uniform over their range."""
    files = write_images(tmp_path, [(4, 5), (3, 3)])  # crop 2: 3·4·2 and 2·2·2 outcomes
    crops = ResidentCrops(files, crop=2, device=torch.device("cpu"))
    images = [load_rgb(path, 2) for path in files]
    draws = torch.cat([crops.batch(500, torch.Generator().manual_seed(seed)) for seed in range(4)])
    counts: dict[tuple, int] = {}
    for patch in as_uint8(draws):
        (origin,) = crop_origins(images, patch)  # noise images: each window is unique
        counts[origin] = counts.get(origin, 0) + 1
    per_image = [sum(n for o, n in counts.items() if o[0] == i) for i in range(2)]
    assert abs(per_image[0] - 1000) < 120  # 2000 draws, half per image (binomial sd ≈ 22)
    assert len([o for o in counts if o[0] == 0]) == 24 and len([o for o in counts if o[0] == 1]) == 8
    expected = {0: per_image[0] / 24, 1: per_image[1] / 8}
    assert all(abs(n - expected[o[0]]) < 5 * expected[o[0]] ** 0.5 for o, n in counts.items())


def test_resident_crops_are_reproducible_from_the_generator_and_match_the_loader_crop(tmp_path):
    files = write_images(tmp_path, [(40, 30), (33, 50)])
    crops = ResidentCrops(files, crop=16, device=torch.device("cpu"))
    first = crops.batch(8, torch.Generator().manual_seed(5))
    assert torch.equal(first, crops.batch(8, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, crops.batch(8, torch.Generator().manual_seed(6)))
    assert first.shape[1:] == RandomCrops(files, 16)[0].shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resident_crops_on_a_gpu_draw_and_cut_there(tmp_path):
    files = write_images(tmp_path, [(40, 30), (33, 50)])
    crops = ResidentCrops(files, crop=16, device=torch.device("cuda"))
    batch = crops.batch(8, torch.Generator(device="cuda").manual_seed(0))
    assert batch.is_cuda and crops.pixels.is_cuda
    images = [load_rgb(path, 16) for path in files]
    assert all(crop_origins(images, patch) for patch in as_uint8(batch.cpu()))
