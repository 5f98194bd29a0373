"""Round-trip an image through the codec at every stage count and score it: the quick
"how does vqcodec do on my image" answer behind `vqcodec evaluate`."""
from __future__ import annotations

import time

import numpy as np
import torch

from vqcodec.api import compress, decompress, model_info
from vqcodec.imaging import prepare_image
from vqcodec.metrics import max_ms_ssim_scales, ms_ssim, psnr


def _as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).double() / 255.0  # [1,3,H,W]


def evaluate(image, *, stages: list[int] | None = None, model: str | None = None, rdo: float | None = None) -> list[dict]:
    """Encode + decode `image` (anything `compress` takes) at each stage count, `rdo` as in
    `compress`.

    Returns one row per stage count: stages, bytes, bpp (real file size), PSNR (8-bit RGB),
    MS-SSIM (fewer scales on small images) and encode/decode seconds.
    """
    prepared = prepare_image(image)
    height, width = prepared.rgb.shape[:2]
    original = _as_tensor(prepared.rgb)
    scales = max_ms_ssim_scales(height, width)
    rows = []
    for count in stages or range(1, model_info(model)["stages"] + 1):
        started = time.perf_counter()
        data = compress(prepared.to_pil(), stages=count, model=model, rdo=rdo)  # real size: mode and alpha included
        encoded = time.perf_counter()
        decoded = np.array(decompress(data).convert("RGB"))
        finished = time.perf_counter()
        restored = _as_tensor(decoded)
        rows.append({
            "stages": count,
            "bytes": len(data),
            "bpp": len(data) * 8 / (width * height),
            "psnr": float(psnr(restored, original)[0]),
            "ms_ssim": float(ms_ssim(restored, original, scales)[0]) if scales else float("nan"),
            "encode_s": encoded - started,
            "decode_s": finished - encoded,
        })
    return rows
