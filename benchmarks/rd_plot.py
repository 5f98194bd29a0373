"""Rate–distortion plots: one PNG per metric, measured curves plus published reference lines.

The rate axis is logarithmic: codecs' curves span 0.05–3 bpp, and on a linear axis vqcodec's
0.1–0.4 bpp would be squeezed into the left edge."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure  # the object API needs no display backend or global state
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from rd_reference import SOURCE
from rd_report import TEST_CODEC, ms_ssim_db

# metric key in the results -> (axis label, transform for display)
METRICS = {
    "psnr": ("PSNR (dB, RGB)", None),
    "ms-ssim": ("MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", ms_ssim_db),
    "haarpsi": ("HaarPSI", None),
}
# Published curves are grey with one dash pattern each, so measured curves keep the colours.
REFERENCE_DASHES = ((6, 2), (2, 2), (6, 2, 2, 2), (10, 3), (1, 1), (4, 4))
MIN_BPP = 0.05  # left end of the rate axis
RATE_TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0)


def _values(points: dict, metric: str) -> tuple[list[float], list[float]]:
    transform = METRICS[metric][1]
    pairs = [(b, v) for b, v in zip(points["bpp"], points[metric]) if v is not None]
    bpp, values = [p[0] for p in pairs], [p[1] for p in pairs]
    return bpp, (transform(values) if transform else values)


def plot_metric(
    curves: dict[str, dict], reference: dict[str, dict[str, list[float]]], metric: str, title: str, path: Path, max_bpp: float
) -> None:
    """Draw `metric` against bpp for every curve and the reference curves that have it.

    Args:
        curves: `summarize` output.
        reference: `{label: {"bpp", "psnr", "ms-ssim"}}` published curves (dashed).
        metric: a key of `METRICS`.
        title: plot title.
        path: PNG to write.
        max_bpp: right end of the x axis.
    """
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    for curve in curves.values():
        bpp, values = _values(curve["results"], metric)
        is_test = curve["codec"] == TEST_CODEC
        ax.plot(
            bpp,
            values,
            marker="o",
            markersize=4 if is_test else 3,
            linewidth=2.4 if is_test else 1.3,
            label=curve["label"],
            zorder=3 if is_test else 2,
        )
    for (label, points), dashes in zip(reference.items(), REFERENCE_DASHES):
        if metric in points:
            bpp, values = _values(points, metric)
            ax.plot(bpp, values, color="0.3", dashes=dashes, linewidth=1.0, label=f"{label} (published)")
    ax.set_xscale("log")
    ax.set_xlim(MIN_BPP, max_bpp)
    ax.xaxis.set_major_locator(FixedLocator([t for t in RATE_TICKS if t <= max_bpp]))
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    _fit_y(ax, curves, reference, metric, max_bpp)
    ax.set_xlabel("bits per pixel (real file size, log scale)")
    ax.set_ylabel(METRICS[metric][0])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if reference and any(metric in p for p in reference.values()):
        fig.text(0.01, 0.01, f"Dashed: {SOURCE}.", fontsize=7, alpha=0.7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _fit_y(ax: Axes, curves: dict[str, dict], reference: dict, metric: str, max_bpp: float) -> None:
    """Limit the y axis to values inside the x range, so far-right points do not squash the plot."""
    shown = []
    for points in [c["results"] for c in curves.values()] + [p for p in reference.values() if metric in p]:
        bpp, values = _values(points, metric)
        shown += [v for b, v in zip(bpp, values) if MIN_BPP <= b <= max_bpp]
    if shown:
        margin = 0.03 * (max(shown) - min(shown) or 1.0)
        ax.set_ylim(min(shown) - margin, max(shown) + margin)


def plot_all(curves: dict[str, dict], reference: dict, title: str, out: Path, max_bpp: float) -> dict[str, Path]:
    """Write `rd_<metric>.png` for every metric; returns `{metric: path}`."""
    paths = {}
    for metric in METRICS:
        paths[metric] = out / f"rd_{metric}.png"
        plot_metric(curves, reference, metric, f"{title}: {metric.upper()} vs rate", paths[metric], max_bpp)
    return paths
