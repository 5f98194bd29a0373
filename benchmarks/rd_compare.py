"""Side-by-side crops of vqcodec and classic codecs at matched bit rates."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rd_codecs import Codec

COMPARED = ("jpeg", "webp", "avif")  # the codecs people already use on the web


def _closest_row(rows: list[dict], curve: str, image: str, bpp: float) -> dict | None:
    candidates = [r for r in rows if r["curve"] == curve and r["image"] == image]
    return min(candidates, key=lambda r: abs(r["bpp"] - bpp), default=None)


def _center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return rgb[top : top + size, left : left + size]


def matched_panels(images: dict[str, np.ndarray], codecs: list[Codec], rows: list[dict],
                   stages: int) -> list[list[tuple[str, np.ndarray]]]:
    """Decode, for each image, vqcodec at `stages` and each compared codec at its closest bpp.

    Each classic codec uses the setting whose bpp on that image is closest to vqcodec's;
    pixels come from re-encoding that point (the codecs are deterministic), labels from
    the measured rows.

    Returns:
        Per image, `(title, rgb [H,W,3] uint8)` panels: original, every vqcodec decoder, then
        JPEG/WebP/AVIF where they ran.
    """
    by_name = {c.name: c for c in codecs}
    vq = by_name["vqcodec"]
    grid = []
    for image, rgb in images.items():
        panels = [(f"{image}\noriginal", rgb)]
        data = vq.encode(rgb, stages)
        target = 8.0 * len(data) / (rgb.shape[0] * rgb.shape[1])
        for decoder in vq.decoders:
            row = _closest_row(rows, vq.curve(decoder), image, target)
            panels.append((f"{vq.curve_label(decoder)}, {stages} stages\n{row['bpp']:.3f} bpp, {row['psnr']:.2f} dB",
                           vq.decode(data, decoder)))
        for codec in (by_name[n] for n in COMPARED if n in by_name):
            row = _closest_row(rows, codec.name, image, target)
            title = f"{codec.label} {codec.setting_name} {row['setting']:g}\n{row['bpp']:.3f} bpp, {row['psnr']:.2f} dB"
            panels.append((title, codec.decode(codec.encode(rgb, row["setting"]), None)))
        grid.append(panels)
    return grid


def draw_side_by_side(grid: list[list[tuple[str, np.ndarray]]], crop: int, path: Path) -> None:
    """Save the panels as a grid of `crop`×`crop` centre crops (one row per image) to `path`."""
    rows, cols = len(grid), max(len(p) for p in grid)
    fig = Figure(figsize=(2.7 * cols, 3.0 * rows))
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for r, panels in enumerate(grid):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(panels):
                title, rgb = panels[c]
                ax.imshow(_center_crop(rgb, crop), interpolation="nearest")
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150, bbox_inches="tight")
