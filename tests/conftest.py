"""Shared fixtures: small generated images and the sample photo shipped with the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SAMPLE = Path(__file__).parent / "data" / "kodim23.png"

# Keep the suite light on shared 2-core machines; results do not depend on thread count.
torch.set_num_threads(1)


def smooth_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """`[H,W,3]` uint8: smooth colour gradients plus mild noise, closer to a photo than noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        128 + 100 * np.sin(x / max(width, 1) * 3.0 + phase) * np.cos(y / max(height, 1) * 2.0 + phase)
        for phase in (0.0, 1.0, 2.0)
    ]
    image = np.stack(channels, axis=2) + rng.normal(0, 4, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def sample_crop() -> Image.Image:
    """A 128×96 crop of the shipped Kodak sample (a real photo, cheap to code)."""
    with Image.open(SAMPLE) as image:
        return image.convert("RGB").crop((300, 200, 428, 296))


@pytest.fixture(scope="session")
def sample_stream(sample_crop) -> bytes:
    import vqcodec

    return vqcodec.compress(sample_crop)
