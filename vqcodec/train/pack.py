"""A compact copy of a training set: every image as the codec's data loader sees it, its
shorter side scaled down to the largest crop training takes, saved as lossy WebP, in the same
folder tree. Moving a training set to a rented GPU or a size-limited machine then costs a
fraction of the original bytes.

WebP rather than JPEG: at the same total size its copies are closer to the scaled originals
(docs/gpu-run.md has the comparison), and that error is what a model trained on the copy
learns to reproduce."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from vqcodec.imaging import prepare_image

from .data import list_images

# The defaults keep a 256×256 crop (the default validation crop) in every image and were
# picked to fit the training photos into the data share of a GPU job (docs/gpu-run.md).
SHORT_SIDE = 256
QUALITY = 74


def packed_name(relative: Path) -> Path:
    """Where an image lands in the copy: WebP files keep their name, other files get `.webp`
    appended (a.png → a.png.webp), so names stay distinct across source formats."""
    if relative.suffix.lower() == ".webp":
        return relative
    return relative.with_name(relative.name + ".webp")


def pack_image(source: Path, target: Path, short_side: int, quality: int) -> None:
    """`source` as RGB (EXIF rotation, 16-bit and grayscale handled as in training), scaled
    down (Lanczos, aspect kept) so that its shorter side is at most `short_side`, written as
    lossy WebP to `target`."""
    image = Image.fromarray(prepare_image(source).rgb)
    scale = short_side / min(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, "WEBP", quality=quality)


def packed_targets(source: Path, files: list[Path]) -> list[Path]:
    """Where each of `files` (under `source`) lands, relative to the copy; two files that
    would land on one name (a.png beside a.png.webp) are an error rather than a silent loss."""
    targets = [packed_name(path.relative_to(source)) for path in files]
    first_of: dict[Path, Path] = {}
    for path, target in zip(files, targets):
        if target in first_of:
            raise ValueError(f"{first_of[target]} and {path} would both be packed to {target}: rename one")
        first_of[target] = path
    return targets


def _move_into_place(staging: Path, destination: Path) -> None:
    """Rename the finished copy to `destination`. An existing destination (folder, file or
    symlink: the link is replaced, never what it points to) is first moved into a fresh
    hidden folder beside it, put back if the rename fails, and deleted only afterwards, so
    no failure leaves a half-deleted copy."""
    if not (destination.is_symlink() or destination.exists()):
        staging.rename(destination)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{destination.name}.replaced-", dir=destination.parent))
    try:
        destination.rename(aside / destination.name)
        try:
            staging.rename(destination)
        except BaseException:
            (aside / destination.name).rename(destination)
            raise
    finally:
        shutil.rmtree(aside)  # a symlink inside is unlinked, never followed


def pack_training_set(
    source: Path, destination: Path, short_side: int = SHORT_SIDE, quality: int = QUALITY, force: bool = False
) -> dict[Path, Path]:
    """Write the compact copy of `source`'s images to `destination`, all or nothing.

    The copy is built in a temporary folder beside `destination` and moved into place once
    every image is written, so a failure (an unreadable image, a full disk) leaves no partial
    copy and an existing `destination` untouched.

    Returns:
        Each source image mapped to its packed copy, in the order of `list_images(source)`.

    Raises:
        FileExistsError: `destination` exists and `force` is not set.
        ValueError: bad `short_side` or `quality`, `source` and `destination` overlapping, two
            images packed to one name, or an image that cannot be read (named).
        FileNotFoundError: `source` is missing or holds no images.
        OSError: the copy cannot be written or moved into place.
    """
    if short_side < 8 or not 1 <= quality <= 100:
        raise ValueError(f"need short_side ≥ 8 and quality in 1..100, got {short_side} and {quality}")
    # abspath first: "." or "x/.." must name a real folder and parent before anything is compared or created.
    source, destination = Path(os.path.abspath(source)), Path(os.path.abspath(destination))
    real_source, real_destination = source.resolve(), destination.resolve()
    if real_destination.is_relative_to(real_source) or real_source.is_relative_to(real_destination):
        raise ValueError(
            f"{destination} and {source} overlap: replacing the copy would delete images, and a later pack would take the copy in"
        )
    if (destination.is_symlink() or destination.exists()) and not force:
        raise FileExistsError(f"{destination} exists; pass --force to replace it")
    files = list_images(source)
    targets = packed_targets(source, files)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        for path, target in zip(tqdm(files, desc="packing", unit="image", dynamic_ncols=True), targets):
            try:
                pack_image(path, staging / target, short_side, quality)
            except (ValueError, OSError) as error:
                raise ValueError(f"cannot pack {path}: {error}") from error
        _move_into_place(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {path: destination / target for path, target in zip(files, targets)}
