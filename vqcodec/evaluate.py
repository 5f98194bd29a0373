"""Rate–distortion of vqcodec on images: encode to real bytes and decode at every operating
point (stage count), and score each. The measurement behind `vqcodec evaluate` and the
vqcodec curves of benchmarks/rd.py.

Results follow CompressAI's JSON schema (`name`, `description`, `results` with one list per
metric and one entry per operating point), with the per-image rows next to them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from vqcodec.api import compress, decompress, model_info
from vqcodec.imaging import prepare_image
from vqcodec.metrics import haarpsi, max_ms_ssim_scales, ms_ssim, psnr

# Row key → key in the CompressAI `results` dict.
RESULT_KEYS = {
    "bpp": "bpp",
    "psnr": "psnr-rgb",
    "ms_ssim": "ms-ssim-rgb",
    "haarpsi": "haarpsi-rgb",
    "encode_s": "encoding_time",
    "decode_s": "decoding_time",
}


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0  # [1,3,H,W]


def score(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | int | None]:
    """Quality of `decoded` against `original`, both `[H,W,3]` uint8 RGB.

    Returns:
        `psnr` (dB, 8-bit RGB; 100 for an exact copy), `ms_ssim` (None below 11 px),
        `ms_ssim_scales` (5, or fewer for images under 176 px), `haarpsi` (in [0,1]).
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


def stream_psnr(image, data: bytes, **options) -> float:
    """PSNR (dB, 8-bit RGB) of the stream `data` decoded (`options` as in `decompress`)
    against `image`, anything `compress` takes, as `compress` saw it."""
    original = prepare_image(image).rgb
    decoded = np.asarray(decompress(data, **options).convert("RGB"))
    with torch.no_grad():
        return float(psnr(_tensor(original), _tensor(decoded)))


class Timer:
    """Wall-clock and process CPU seconds of a block. CPU time stays meaningful on a busy
    machine, where other processes inflate wall time; single-threaded, the two agree when idle."""

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


def measure_image(
    image,
    *,
    stages: Iterable[int] | None = None,
    decoders: Iterable[str] = ("fidelity",),
    model: str | Path | None = None,
    prior: str | None = None,
    prior_file: str | Path | None = None,
    rdo: float | None = None,
    refine: int = 0,
    device: str | torch.device | None = "cpu",
) -> list[dict]:
    """Encode `image` (anything `compress` takes) at each stage count and decode each stream
    with each decoder; `model`, `prior`, `prior_file`, `rdo`, `refine` and `device` as in `compress`.

    Returns:
        One row per (stage count, decoder): stages, decoder, bytes, bpp (real file size, mode
        and alpha included), the scores of `score` on the RGB image, and encode/decode
        seconds (wall clock and process CPU).
    """
    prepared = prepare_image(image)
    source = prepared.to_pil()
    rows = []
    for count in stages or range(1, model_info(model)["stages"] + 1):
        with Timer() as encode_time:
            data = compress(
                source, stages=count, model=model, prior=prior, prior_file=prior_file, rdo=rdo, refine=refine, device=device
            )
        for decoder in decoders:
            with Timer() as decode_time:
                decoded = np.asarray(
                    decompress(data, decoder=decoder, model=model, prior_file=prior_file, device=device).convert("RGB")
                )
            rows.append({"stages": count, **result_row(decoder, data, prepared.rgb, decoded, encode_time, decode_time)})
    return rows


def result_row(
    decoder: str | None, data: bytes, original: np.ndarray, decoded: np.ndarray, encode_time: Timer, decode_time: Timer
) -> dict:
    """One measured point: decoder, bytes, bpp (real file size), the scores of `score` and
    the encode/decode seconds (wall clock and process CPU)."""
    height, width = original.shape[:2]
    return {
        "decoder": decoder,
        "bytes": len(data),
        "bpp": 8.0 * len(data) / (height * width),
        **score(original, decoded),
        "encode_s": encode_time.wall,
        "decode_s": decode_time.wall,
        "encode_cpu_s": encode_time.cpu,
        "decode_cpu_s": decode_time.cpu,
    }


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as the image files Pillow can read in them (by suffix, sorted;
    `.vqc` streams left out)."""
    readable = set(Image.registered_extensions()) - {".vqc"}
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in readable)
        else:
            found.append(path)
    return found


def _mean(values: list) -> float | None:
    """Mean of the values present (None where there are none: MS-SSIM of images under 11 px)."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def evaluate(
    images: Mapping[str, object] | Iterable[str | Path],
    *,
    stages: Iterable[int] | None = None,
    decoder: str = "fidelity",
    model: str | Path | None = None,
    prior: str | None = None,
    prior_file: str | Path | None = None,
    rdo: float | None = None,
    refine: int = 0,
    device: str | torch.device | None = "cpu",
    progress: bool = False,
) -> dict:
    """Measure every image at every operating point (`stages`, default 1..S) with `decoder`.

    Args:
        images: image paths, or `{name: image}` with anything `compress` takes.
        stages, model, prior, prior_file, rdo, refine, device: as in `measure_image`.
        progress: show a progress bar on stderr.

    Returns:
        CompressAI's results document: `name`, `description`, `results` (`bpp`, `psnr-rgb`,
        `ms-ssim-rgb`, `haarpsi-rgb`, `encoding_time`, `decoding_time`: one mean over the
        images per operating point; None where no image has the metric), plus `stages` (the
        operating points) and `per_image` (one row per image and operating point).
    """
    if not isinstance(images, Mapping):
        images = {str(path): path for path in images}
    if not images:
        raise ValueError("no images to evaluate")
    info = model_info(model)
    points = list(stages or range(1, info["stages"] + 1))
    rows = []
    with tqdm(total=len(images) * len(points), unit="point", file=sys.stderr, disable=not progress) as bar:
        for name, image in images.items():
            for count in points:
                bar.set_description(f"{Path(name).name} {count} stages")
                rows += [
                    {"image": name, **row}
                    for row in measure_image(
                        image,
                        stages=[count],
                        decoders=[decoder],
                        model=model,
                        prior=prior,
                        prior_file=prior_file,
                        rdo=rdo,
                        refine=refine,
                        device=device,
                    )
                ]
                bar.update()
    results = {
        key: [_mean([row[row_key] for row in rows if row["stages"] == count]) for count in points]
        for row_key, key in RESULT_KEYS.items()
    }
    description = (
        f"vqcodec model {info['name']} (weights {info['weights_hash']}), {decoder} decoder, "
        f"{prior or 'default'} prior, rdo {'default' if rdo is None else rdo}, refine {refine}, {len(images)} image(s); "
        "bpp from the real file sizes"
    )
    return {
        "name": f"{info['name']}-{decoder}",
        "description": description,
        "results": results,
        "stages": points,
        "per_image": rows,
    }
