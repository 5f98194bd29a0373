"""Bjøntegaard deltas (BD-rate, BD-quality) between two rate–distortion curves.

Curves are interpolated with monotone piecewise-cubic Hermite splines (PCHIP), as in the
current JVET/VCEG practice, rather than the original single cubic fit, which overshoots on
sweeps as wide as 0.05–3 bpp. Only the range where both curves have data is integrated, and
only when it covers at least half of the test curve's range: a delta over a thin slice
describes one end of a curve, not the comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

MIN_OVERLAP = 0.5  # share of the test curve's range that both curves must cover
# Curves of the RD benchmark to compare with, by the names of their committed files
# (`NAME.json`): the shipped model's (fidelity decoder) and the other codecs'.
COMPARED_CURVES = ("vqcodec-fidelity", "webp", "avif", "jpeg2000", "jpegxl", "jpeg")


def quality_at_rates(rates: list[float], quality: list[float], at: list[float]) -> list[float | None]:
    """A measured curve's quality at each rate of `at`, by PCHIP in log-rate as BD metrics
    interpolate (straight lines in bpp would sit below a concave curve); `None` outside its
    rate range or where a quality is missing (NaN)."""
    order = np.argsort(rates)
    rates, quality = np.asarray(rates, float)[order], np.asarray(quality, float)[order]
    if np.isnan(quality).any():
        return [None] * len(at)
    curve = PchipInterpolator(np.log(rates), quality)
    return [float(curve(np.log(x))) if rates[0] <= x <= rates[-1] else None for x in at]


def _mean_over_overlap(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray) -> float | None:
    """Mean of `f_b - f_a` over the x-range both curves cover; `None` where that covers less
    than `MIN_OVERLAP` of curve b's (the test curve's) range."""
    low, high = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    if not (high > low and high - low >= MIN_OVERLAP * (xb.max() - xb.min())):
        return None
    return float((PchipInterpolator(xb, yb).integrate(low, high) - PchipInterpolator(xa, ya).integrate(low, high)) / (high - low))


def _monotone_curve(rate: list[float], quality: list[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """(log rate, quality) sorted by rate, or `None` unless quality rises strictly with rate."""
    order = np.argsort(rate)
    log_rate, q = np.log(np.asarray(rate, float)[order]), np.asarray(quality, float)[order]
    if len(q) < 2 or not (np.all(np.diff(q) > 0) and np.all(np.diff(log_rate) > 0)):
        return None
    return log_rate, q


def bd_rate(
    anchor_rate: list[float], anchor_quality: list[float], test_rate: list[float], test_quality: list[float]
) -> float | None:
    """Average rate difference of the test curve against the anchor at equal quality, in percent.

    Negative means the test codec needs fewer bits. Rates in bpp (> 0), quality in any
    increasing scale (PSNR dB, MS-SSIM dB). Returns `None` when the quality ranges overlap on
    less than half of the test curve's range or a curve is not strictly increasing (BD is
    undefined there).
    """
    anchor, test = _monotone_curve(anchor_rate, anchor_quality), _monotone_curve(test_rate, test_quality)
    if anchor is None or test is None:
        return None
    mean_log_ratio = _mean_over_overlap(anchor[1], anchor[0], test[1], test[0])
    return None if mean_log_ratio is None else (float(np.exp(mean_log_ratio)) - 1.0) * 100.0


def bd_quality(
    anchor_rate: list[float], anchor_quality: list[float], test_rate: list[float], test_quality: list[float]
) -> float | None:
    """Average quality difference (test − anchor) at equal rate, e.g. BD-PSNR in dB; `None` as for
    `bd_rate`, the half-range rule here applying to the test curve's log-rate range."""
    anchor, test = _monotone_curve(anchor_rate, anchor_quality), _monotone_curve(test_rate, test_quality)
    if anchor is None or test is None:
        return None
    return _mean_over_overlap(anchor[0], anchor[1], test[0], test[1])


def committed_curves(folder: Path) -> dict[str, dict[str, list[float]]]:
    """The PSNR curves of `COMPARED_CURVES` that the RD benchmark wrote to `folder`
    (CompressAI-schema JSON), by name, as `{"bpp": [...], "psnr": [...]}`; a curve without a
    file is left out."""
    curves = {}
    for name in COMPARED_CURVES:
        path = folder / f"{name}.json"
        if path.is_file():
            results = json.loads(path.read_text())["results"]
            curves[name] = {"bpp": results["bpp"], "psnr": results["psnr"]}
    return curves


def bd_rates_against(curves: dict[str, dict[str, list[float]]], bpp: list[float], psnr: list[float]) -> dict[str, float | None]:
    """BD-rate (%) of the curve (`bpp`, `psnr`) against each of `curves` (`committed_curves`)."""
    return {name: bd_rate(curve["bpp"], curve["psnr"], bpp, psnr) for name, curve in curves.items()}


def quality_ahead(
    curve_rates: list[float], curve_quality: list[float], rates: list[float], quality: list[float]
) -> list[float | None]:
    """How far each point (`rates[i]`, `quality[i]`) lies above the curve at the same rate
    (`quality_at_rates`), in the quality's units; None outside the curve's range."""
    at = quality_at_rates(curve_rates, curve_quality, rates)
    return [None if other is None else value - other for value, other in zip(quality, at, strict=True)]


def psnr_ahead(curve: dict[str, list[float]], bpp: list[float], psnr: list[float]) -> list[float | None]:
    """How many dB each point (`bpp[i]`, `psnr[i]`) lies above `curve` (`committed_curves`)."""
    return quality_ahead(curve["bpp"], curve["psnr"], bpp, psnr)
