"""Load a dataset and measure one rate point: encode to real bytes, decode, score."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from rd_codecs import Codec
from vqcodec.imaging import prepare_image
from vqcodec.metrics import haarpsi, max_ms_ssim_scales, ms_ssim, psnr

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


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0  # [1,3,H,W]


def score(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | int | None]:
    """Quality of `decoded` against `original`, both `[H,W,3]` uint8 RGB.

    Returns:
        `psnr` (dB, 8-bit RGB), `ms_ssim` (None below 11 px), `ms_ssim_scales` (5, or fewer
        for images under 176 px), `haarpsi` (in [0,1]).
    """
    if decoded.shape != original.shape:
        raise ValueError(f"decoded image is {decoded.shape}, original {original.shape}")
    x, y = _tensor(original), _tensor(decoded)
    scales = max_ms_ssim_scales(*original.shape[:2])
    with torch.no_grad():
        return {
            "psnr": float(psnr(x, y)),
            "ms_ssim": float(ms_ssim(x, y, scales=scales)) if scales else None,
            "ms_ssim_scales": scales,
            "haarpsi": float(haarpsi(x, y)),
        }


class _Timer:
    """Wall-clock and process CPU seconds of a block. CPU time stays meaningful on a busy
    machine, where other processes inflate wall time; single-threaded, the two agree when idle."""

    def __enter__(self) -> "_Timer":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


def measure(codec: Codec, image_name: str, rgb: np.ndarray, setting: float) -> list[dict]:
    """Encode `rgb` at `setting`, decode with every decoder of `codec`, and score each.

    Returns:
        One row per decoder: image, curve, setting, bytes, bpp (from the real byte count),
        the scores of `score`, and encode/decode seconds (wall clock and process CPU).
    """
    with _Timer() as encode_time:
        data = codec.encode(rgb, setting)
    height, width = rgb.shape[:2]
    rows = []
    for decoder in codec.decoders:
        with _Timer() as decode_time:
            decoded = codec.decode(data, decoder)
        rows.append({
            "image": image_name, "codec": codec.name, "curve": codec.curve(decoder), "setting": setting,
            "bytes": len(data), "bpp": 8.0 * len(data) / (height * width), **score(rgb, decoded),
            "encode_s": encode_time.wall, "decode_s": decode_time.wall,
            "encode_cpu_s": encode_time.cpu, "decode_cpu_s": decode_time.cpu,
        })
    return rows
