"""Side-by-side crops of vqcodec and classic codecs at matched file sizes: each classic codec's
quality is searched, per image, for the file size closest to vqcodec's."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from rd_codecs import Codec
from vqcodec.evaluate import score

COMPARED = ("jpeg", "webp", "avif")  # the codecs people already use on the web


def matched_quality(codec: Codec, rgb: np.ndarray, target_bytes: int) -> tuple[int, bytes]:
    """The integer quality in the codec's sweep range whose file of `rgb` is closest in size to
    `target_bytes` (bisection: a file grows with quality), and that file."""
    low, high = int(min(codec.settings)), int(max(codec.settings))
    files = {}

    def size(quality: int) -> int:
        if quality not in files:
            files[quality] = codec.encode(rgb, quality)
        return len(files[quality])

    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) < target_bytes else (low, middle)
    best = min((low, high), key=lambda quality: abs(size(quality) - target_bytes))
    return best, files[best]


def _center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return rgb[top : top + size, left : left + size]


def _title(name: str, original: np.ndarray, size: int, decoded: np.ndarray) -> str:
    """A panel's title: what coded it, its file size, bpp and PSNR."""
    bpp = 8.0 * size / (original.shape[0] * original.shape[1])
    return f"{name}\n{size:,} B, {bpp:.3f} bpp, {score(original, decoded)['psnr']:.2f} dB"


def matched_panels(images: dict[str, np.ndarray], codecs: list[Codec], stages: int) -> list[list[tuple[str, np.ndarray]]]:
    """Decode, for each image, vqcodec at `stages` and each compared codec at the quality whose
    file is closest in size to vqcodec's (`matched_quality`).

    Returns:
        Per image, `(title, rgb [H,W,3] uint8)` panels: original, every vqcodec decoder, then
        JPEG/WebP/AVIF where they ran, each titled with its bytes, bpp and PSNR.
    """
    by_name = {c.name: c for c in codecs}
    vq = by_name["vqcodec"]
    grid = []
    for image, rgb in images.items():
        panels = [(f"{image}\noriginal", rgb)]
        data = vq.encode(rgb, stages)

        for decoder in vq.decoders:
            decoded = vq.decode(data, decoder)
            panels.append((_title(f"{vq.curve_label(decoder)}, {stages} stages", rgb, len(data), decoded), decoded))
        for codec in (by_name[n] for n in COMPARED if n in by_name):
            quality, encoded = matched_quality(codec, rgb, len(data))
            decoded = codec.decode(encoded, None)
            panels.append((_title(f"{codec.label} {codec.setting_name} {quality}", rgb, len(encoded), decoded), decoded))
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
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=150, bbox_inches="tight")
    # Matplotlib writes RGBA; the alpha is opaque everywhere and costs a tenth of the file,
    # which is committed anew with every model.
    Image.open(rendered).convert("RGB").save(path, format="PNG", optimize=True)
