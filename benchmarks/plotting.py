"""The finishing steps the benchmark and probe plots share: a light grid and a legend on each
axis, a tight layout, one PNG."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def save_figure(figure: Figure, axes: Iterable[Axes], path: Path, dpi: int = 120, legend_size: int = 8) -> None:
    """Grid and legend on every axis of `axes`, then `figure` laid out and written to `path`."""
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=legend_size)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
