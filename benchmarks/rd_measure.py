"""Load a dataset and measure one rate point: encode to real bytes, decode, score."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rd_codecs import Codec
from vqcodec.evaluate import Timer, result_row
from vqcodec.imaging import prepare_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}


def load_images(folder: Path, limit: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read the images of `folder` (sorted by name) as `[H,W,3]` uint8 RGB.

    Returns:
        `{file name: rgb}` and notes on images that had to be converted to 8-bit RGB (from
        another mode, or from 16 bits per channel).
    """
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    images, notes = {}, []
    for path in paths[:limit]:
        with warnings.catch_warnings(record=True) as caught:  # e.g. 16-bit sources, kept in the results
            warnings.simplefilter("always")
            prepared = prepare_image(path)  # what every codec compares against: the image as vqcodec reads it
        notes += [f"{path.name}: {warning.message}" for warning in caught]
        if prepared.mode != "RGB":
            notes.append(f"{path.name}: converted from mode {prepared.mode} to 8-bit RGB")
        images[path.name] = prepared.rgb
    return images, notes


def measure(codec: Codec, image_name: str, rgb: np.ndarray, setting: float) -> list[dict]:
    """Encode `rgb` at `setting`, decode with every decoder of `codec`, and score each (a codec
    that measures itself, vqcodec, through its own `measure`).

    Returns:
        One row per decoder: image, curve, setting, bytes, bpp (from the real byte count),
        the scores of `vqcodec.evaluate.score`, and encode/decode seconds (wall clock and
        process CPU).
    """
    points = codec.measure(rgb, setting) if codec.measure is not None else _measure_points(codec, rgb, setting)
    return [
        {"image": image_name, "codec": codec.name, "curve": codec.curve(point.pop("decoder")), "setting": setting, **point}
        for point in points
    ]


def _measure_points(codec: Codec, rgb: np.ndarray, setting: float) -> list[dict]:
    with Timer() as encode_time:
        data = codec.encode(rgb, setting)
    rows = []
    for decoder in codec.decoders:
        with Timer() as decode_time:
            decoded = codec.decode(data, decoder)
        rows.append(result_row(decoder, data, rgb, decoded, encode_time, decode_time))
    return rows
