"""Training images: any folder (recursive; jpg/png/webp), decoded once into memory, served as
random crops with flips. Decoding JPEGs every step would cost more CPU than the model.

Two ways to serve the crops: `RandomCrops`, a Dataset that DataLoader workers batch on the
CPU, and `ResidentCrops`, which holds every image on the training device as one uint8 tensor
and cuts whole batches there, so a GPU is never left waiting for the host."""

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
        image = image.resize(
            (max(min_side, round(image.width * scale)), max(min_side, round(image.height * scale))), Image.Resampling.BICUBIC
        )
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


class ResidentCrops:
    """The images of `files` on `device` as one uint8 tensor (one copy, pixels packed without
    padding), served as batches of random `crop`×`crop` crops with horizontal flips.

    The crops follow `RandomCrops`: an image drawn uniformly, a position uniform over the
    image, a flip with probability 1/2, images upscaled first where a side is under `crop`.
    The draws come from the generator given to `batch`, so a run that seeds it by step sees
    the same crops after a resume.
    """

    def __init__(self, files: list[Path], crop: int, device: torch.device) -> None:
        images = [load_rgb(path, crop) for path in files]
        sizes = torch.tensor([image.shape[:2] for image in images], dtype=torch.int64)  # [I, 2] (H, W)
        starts = torch.cumsum(sizes.prod(dim=1), dim=0) - sizes.prod(dim=1)  # first pixel of each image
        self.pixels = torch.empty(int(sizes.prod(dim=1).sum()), 3, dtype=torch.uint8, device=device)  # [P, 3]
        images.reverse()
        for start in starts.tolist():  # copied one by one, each host copy freed after its own
            image = torch.from_numpy(images.pop()).reshape(-1, 3)
            self.pixels[start : start + image.shape[0]] = image.to(device)
        self.heights, self.widths = sizes[:, 0].to(device), sizes[:, 1].to(device)
        self.starts = starts.to(device)
        self.crop = crop
        self.offsets = torch.arange(crop, device=device)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """`[B,3,crop,crop]` float in [0,1], channels_last, on the images' device; `generator`
        must live on that device too, so no draw leaves it."""
        device, crop = self.pixels.device, self.crop
        picks = torch.randint(len(self), (batch_size,), device=device, generator=generator)
        draws = torch.rand(batch_size, 3, device=device, generator=generator, dtype=torch.float64)
        heights, widths = self.heights[picks], self.widths[picks]
        # floor(u·(n+1)) is uniform over 0..n; the clamp guards the u → 1 rounding edge.
        top = (draws[:, 0] * (heights - crop + 1)).long().clamp_max_(heights - crop)
        left = (draws[:, 1] * (widths - crop + 1)).long().clamp_max_(widths - crop)
        flipped = draws[:, 2] < 0.5
        columns = left[:, None] + torch.where(flipped[:, None], crop - 1 - self.offsets, self.offsets)  # [B, crop]
        rows = top[:, None] + self.offsets  # [B, crop]
        index = self.starts[picks, None, None] + rows[:, :, None] * widths[:, None, None] + columns[:, None, :]
        patches = self.pixels[index]  # [B, crop, crop, 3]
        # [B,H,W,3] viewed as [B,3,H,W] is channels_last already: only the dtype changes.
        return patches.permute(0, 3, 1, 2).float().div_(255.0)


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


def evenly_spaced(files: list[Path], count: int) -> list[Path]:
    """Every (len/count)-th file, at most count of them: a sample that spans the whole list."""
    return files[:: max(1, len(files) // count)][:count]


def split_files(files: list[Path], validation_count: int) -> tuple[list[Path], list[Path]]:
    """An evenly spaced sample of the files goes to validation, the rest to training."""
    if validation_count <= 0:
        return files, []
    validation = evenly_spaced(files, validation_count)
    held_out = set(validation)
    train = [f for f in files if f not in held_out]
    if not train:
        raise ValueError(
            f"{len(files)} images leave none for training after {len(validation)} for validation: "
            "add images or lower the number of validation images"
        )
    return train, validation
