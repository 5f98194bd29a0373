"""Published Kodak rate–distortion curves (CompressAI), drawn as reference lines and BD anchors."""

from __future__ import annotations

import csv
from pathlib import Path

DEFAULT_REFERENCE = Path(__file__).parent / "reference" / "compressai_kodak.csv"
SOURCE = "CompressAI results/image/kodak (published)"
# CSV method -> label; the MSE-trained learned models plus the VVC reference encoder.
METHODS = {
    "bmshj2018-hyperprior_mse_cpu": "bmshj2018-hyperprior",
    "mbt2018_mse_cpu": "mbt2018",
    "cheng2020-anchor_mse_cpu": "cheng2020-anchor",
    "vtm": "VTM (VVC)",
}


def load_reference(path: Path) -> dict[str, dict[str, list[float | None]]]:
    """Read the curves of `METHODS` from a `method,bpp,psnr,ms_ssim` CSV.

    Returns:
        `{label: {"bpp": [...], "psnr": [...], "ms-ssim": [...]}}`, points sorted by bpp;
        `None` where the file has no value.
    """
    curves: dict[str, dict[str, list[float | None]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            label = METHODS.get(row["method"])
            if label is None:
                continue
            curve = curves.setdefault(label, {"bpp": [], "psnr": [], "ms-ssim": []})
            for key, column in (("bpp", "bpp"), ("psnr", "psnr"), ("ms-ssim", "ms_ssim")):
                curve[key].append(float(row[column]) if row[column] else None)  # some papers omit a metric
    for curve in curves.values():
        order = sorted(range(len(curve["bpp"])), key=curve["bpp"].__getitem__)
        for key in curve:
            curve[key] = [curve[key][i] for i in order]
    return curves
