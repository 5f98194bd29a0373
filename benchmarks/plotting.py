"""What the benchmark and probe plots share: the RD benchmark's curves drawn as context, and
the finishing steps (a light grid and a legend on each axis, a tight layout, one PNG)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def draw_compared_curves(axis: Axes, compared: dict[str, dict[str, list[float]]], top_rate: float) -> None:
    """The RD benchmark's PSNR curves (`rd_bd.committed_curves`) on `axis`, cut to rates up to
    `top_rate`: the other codecs thin in the last colours, leaving the first ones to the
    curves under study, and the shipped model's black and over them, which would otherwise
    hide it."""
    for i, (name, curve) in enumerate(compared.items()):
        kept = [(b, q) for b, q in zip(curve["bpp"], curve["psnr"], strict=True) if b <= top_rate]
        if not kept:
            continue
        shipped = name.startswith("vqcodec")
        style: dict[str, Any] = dict(color="black", ls="-.", lw=1.2, zorder=5) if shipped else dict(color=f"C{9 - i}", lw=0.9)
        axis.plot(*zip(*kept), label=f"{name} (shipped)" if shipped else name, **style)


def save_figure(figure: Figure, axes: Iterable[Axes], path: Path, dpi: int = 120, legend_size: int = 8) -> None:
    """Grid and legend on every axis of `axes`, then `figure` laid out and written to `path`."""
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=legend_size)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
