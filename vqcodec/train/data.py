"""Training images: any folder (recursive; jpg/png/webp), decoded once into memory, served as
random crops with flips. Decoding JPEGs every step would cost more CPU than the model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vqcodec.imaging import prepare_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def list_images(root: str | Path) -> list[Path]:
    """All image files under `root`, sorted so that splits are reproducible."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no .jpg/.png/.webp images under {root}")
    return files


def load_rgb(path: Path, min_side: int) -> np.ndarray:
    """`[H,W,3]` uint8 as the codec sees the file (`prepare_image`: EXIF rotation, 16-bit,
    grayscale and palette handled, alpha dropped); upscaled if a side < min_side."""
    image = Image.fromarray(prepare_image(path).rgb)
    if min(image.size) < min_side:
        scale = min_side / min(image.size)
        image = image.resize((max(min_side, round(image.width * scale)), max(min_side, round(image.height * scale))), Image.BICUBIC)
    return np.asarray(image).copy()


class RandomCrops(Dataset):
    """Random `crop`×`crop` patches with horizontal flips, `[3,crop,crop]` float in [0,1].

    The epoch length is nominal (`samples_per_epoch`): crops are drawn fresh every time.
    """

    def __init__(self, files: list[Path], crop: int, samples_per_epoch: int = 100_000) -> None:
        self.images = [load_rgb(path, crop) for path in files]
        self.crop = crop
        self.samples_per_epoch = samples_per_epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, item: int) -> torch.Tensor:
        # Seeded by the item index so a resumed run sees the same crops as an uninterrupted one.
        rng = np.random.default_rng(item)
        image = self.images[rng.integers(len(self.images))]
        top = rng.integers(image.shape[0] - self.crop + 1)
        left = rng.integers(image.shape[1] - self.crop + 1)
        patch = image[top : top + self.crop, left : left + self.crop]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float() / 255.0


class CenterCrops(Dataset):
    """Deterministic center crops for validation, `[3,size,size]` float in [0,1]."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.images = [load_rgb(path, size) for path in files]
        self.size = size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: int) -> torch.Tensor:
        image = self.images[item]
        top = (image.shape[0] - self.size) // 2
        left = (image.shape[1] - self.size) // 2
        patch = image[top : top + self.size, left : left + self.size]
        return torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float() / 255.0


def split_files(files: list[Path], validation_count: int) -> tuple[list[Path], list[Path]]:
    """Every (len/validation_count)-th file goes to validation, the rest to training."""
    if validation_count <= 0:
        return files, []
    step = max(1, len(files) // validation_count)
    validation = files[::step][:validation_count]
    held_out = set(validation)
    train = [f for f in files if f not in held_out]
    if not train:
        raise ValueError(f"{len(files)} images leave none for training after {len(validation)} for validation: "
                         "add images or lower the number of validation images")
    return train, validation
