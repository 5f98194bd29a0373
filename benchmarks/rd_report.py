"""Turn per-image rows into curves (CompressAI JSON schema), BD tables and markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rd_bd import bd_quality, bd_rate, quality_at_rates
from rd_codecs import Codec
from rd_reference import SOURCE

# Row key -> key in the CompressAI `results` dict.
RESULT_KEYS = {
    "bpp": "bpp",
    "psnr": "psnr",
    "ms_ssim": "ms-ssim",
    "haarpsi": "haarpsi",
    "encode_s": "encoding_time",
    "decode_s": "decoding_time",
    "encode_cpu_s": "encoding_cpu_time",
    "decode_cpu_s": "decoding_cpu_time",
}
TEST_CODEC = "vqcodec"
AVERAGING = (
    "Every figure of a rate point is the mean over the images of per-image values (PSNR "
    "averaged in dB, as CompressAI's published curves are)."
)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def summarize(rows: list[dict], codecs: list[Codec]) -> dict[str, dict]:
    """Average the per-image rows of every curve, one entry per rate setting.

    Returns:
        `{curve: document}`; each document follows CompressAI's results files (`name`,
        `description`, `results` with one list per metric, one entry per rate point) and adds
        `label`, `codec`, `setting`, `settings` and the `per_image` rows.
    """
    curves = {}
    for codec in codecs:
        for decoder in codec.decoders:
            name = codec.curve(decoder)
            curve_rows = [r for r in rows if r["curve"] == name]
            settings = [s for s in codec.settings if any(r["setting"] == s for r in curve_rows)]
            results = {
                key: [_mean([r[row_key] for r in curve_rows if r["setting"] == s]) for s in settings]
                for row_key, key in RESULT_KEYS.items()
            }
            curves[name] = {
                "name": name,
                "label": codec.curve_label(decoder),
                "codec": codec.name,
                "description": codec.description,
                "setting": codec.setting_name,
                "settings": settings,
                "results": results,
                "per_image": curve_rows,
            }
    return curves


def ms_ssim_db(values: list[float]) -> list[float]:
    """MS-SSIM as `-10 log10(1 - MS-SSIM)`: spreads the values near 1 where codecs differ."""
    return [-10.0 * math.log10(max(1.0 - v, 1e-10)) for v in values]


def _bd_entry(test: dict, anchor: dict, anchor_label: str, source: str) -> dict:
    def delta(fn, metric: str) -> float | None:
        pairs = [(b, q) for b, q in zip(anchor["bpp"], anchor[metric]) if q is not None]
        test_pairs = [(b, q) for b, q in zip(test["bpp"], test[metric]) if q is not None]
        if not pairs or not test_pairs:
            return None
        (ab, aq), (tb, tq) = zip(*pairs), zip(*test_pairs)
        if metric == "ms-ssim":
            aq, tq = ms_ssim_db(aq), ms_ssim_db(tq)
        return fn(list(ab), list(aq), list(tb), list(tq))

    return {
        "anchor": anchor_label,
        "source": source,
        "bd_rate_psnr_percent": delta(bd_rate, "psnr"),
        "bd_psnr_db": delta(bd_quality, "psnr"),
        "bd_rate_ms_ssim_percent": delta(bd_rate, "ms-ssim"),
    }


def bd_table(curves: dict[str, dict], reference: dict[str, dict[str, list[float]]]) -> list[dict]:
    """BD-rate/BD-PSNR of every vqcodec curve against every other measured and published curve.

    Returns:
        Rows with `test`, `anchor`, `source`, `bd_rate_psnr_percent`, `bd_psnr_db` and
        `bd_rate_ms_ssim_percent` (MS-SSIM in dB); a value is `None` where the curves overlap
        on less than half of vqcodec's range or a curve is not monotone.
    """
    tests = [c for c in curves.values() if c["codec"] == TEST_CODEC]
    anchors = [(c["results"], c["label"], "measured") for c in curves.values() if c["codec"] != TEST_CODEC]
    anchors += [(points, label, SOURCE) for label, points in reference.items()]
    return [
        {"test": test["label"], **_bd_entry(test["results"], points, label, source)}
        for test in tests
        for points, label, source in anchors
    ]


def same_rate_rows(curves: dict[str, dict], anchor: str = "jpeg") -> list[dict]:
    """Every vqcodec rate point against `anchor` at the same bpp, the anchor's PSNR and
    MS-SSIM interpolated by PCHIP in log-rate, as BD metrics do (None outside its range;
    straight lines in bpp would sit below the anchor's concave curve and flatter vqcodec).
    This is the shipped model's bar: ahead of JPEG at every rate it offers."""
    if anchor not in curves:
        return []
    reference = curves[anchor]["results"]
    # MS-SSIM is missing on images too small for its scales: NaN here, no anchor value then.
    anchor_values = {metric: [np.nan if v is None else v for v in reference[metric]] for metric in ("psnr", "ms-ssim")}
    rows = []
    for curve in curves.values():
        if curve["codec"] != TEST_CODEC:
            continue
        res = curve["results"]
        anchor_at = {metric: quality_at_rates(reference["bpp"], values, res["bpp"]) for metric, values in anchor_values.items()}
        for i, setting in enumerate(curve["settings"]):
            row = {"test": curve["label"], "anchor": curves[anchor]["label"], "setting": setting, "bpp": res["bpp"][i]}
            for metric in anchor_values:
                at = anchor_at[metric][i]
                row[metric] = res[metric][i]
                row[f"anchor_{metric}"] = at
                row[f"{metric}_ahead"] = None if at is None or res[metric][i] is None else res[metric][i] > at
            rows.append(row)
    return rows


def same_rate_markdown(rows: list[dict]) -> str:
    if not rows:
        return "_No vqcodec or anchor curve in this run._"
    mark = {True: "yes", False: "**no**", None: "n/a"}
    anchor = rows[0]["anchor"]
    lines = [
        f"| vqcodec | stages | bpp | PSNR | {anchor} PSNR | ahead | MS-SSIM | {anchor} MS-SSIM | ahead |",
        "|---|---:|---:|---:|---:|:-:|---:|---:|:-:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['test']} | {r['setting']:g} | {_fmt(r['bpp'], 3)} | {_fmt(r['psnr'], 2)} | "
            f"{_fmt(r['anchor_psnr'], 2)} | {mark[r['psnr_ahead']]} | {_fmt(r['ms-ssim'], 4)} | "
            f"{_fmt(r['anchor_ms-ssim'], 4)} | {mark[r['ms-ssim_ahead']]} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def rate_table(curve: dict) -> str:
    """Markdown table of one curve's rate points."""
    res = curve["results"]
    lines = [
        f"| {curve['setting']} | bpp | PSNR (dB) | MS-SSIM | HaarPSI | encode s (CPU) | decode s (CPU) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, setting in enumerate(curve["settings"]):
        lines.append(
            f"| {setting:g} | {_fmt(res['bpp'][i], 3)} | {_fmt(res['psnr'][i], 2)} | "
            f"{_fmt(res['ms-ssim'][i], 4)} | {_fmt(res['haarpsi'][i], 4)} | "
            f"{_fmt(res['encoding_time'][i], 3)} ({_fmt(res['encoding_cpu_time'][i], 3)}) | "
            f"{_fmt(res['decoding_time'][i], 3)} ({_fmt(res['decoding_cpu_time'][i], 3)}) |"
        )
    return "\n".join(lines)


def bd_markdown(bd: list[dict]) -> str:
    """Markdown BD table; negative BD-rate = vqcodec needs fewer bits for the same quality."""
    if not bd:
        return "_No vqcodec curve in this run, so no BD table._"
    lines = ["| vqcodec | anchor | source | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM |", "|---|---|---|---:|---:|---:|"]
    for row in bd:
        rate, ms = _fmt(row["bd_rate_psnr_percent"], 1, True), _fmt(row["bd_rate_ms_ssim_percent"], 1, True)
        lines.append(
            f"| {row['test']} | {row['anchor']} | {row['source']} | "
            f"{rate}{'' if rate == 'n/a' else ' %'} | {_fmt(row['bd_psnr_db'], 2, True)} dB | "
            f"{ms}{'' if ms == 'n/a' else ' %'} |"
        )
    return "\n".join(lines)


def _notices(meta: dict) -> list[str]:
    lines = [f"- skipped **{name}**: {reason}" for name, reason in meta["skipped"].items()]
    return lines + [f"- {note}" for note in meta["notes"]]


def tables_markdown(curves: dict[str, dict], bd: list[dict], meta: dict) -> str:
    """The full `table.md`: run facts, one rate table per curve, the BD table and notices."""
    parts = [
        f"# Rate–distortion on {meta['dataset']} ({meta['images']} images)",
        "",
        f"Encode/decode seconds are per image and single-threaded: wall clock, and in brackets process "
        f"CPU time (the honest figure when the machine is busy). Measuring took {meta['wall_seconds']:.0f} s "
        f"wall and {meta['cpu_seconds']:.0f} s CPU with {meta['jobs']} process(es). "
        f"{AVERAGING} Generated by `benchmarks/rd.py`; do not edit by hand.",
        "",
    ]
    for curve in curves.values():
        parts += [f"## {curve['label']}", "", curve["description"], "", rate_table(curve), ""]
    parts += ["## vqcodec against JPEG at the same bpp", "", same_rate_markdown(same_rate_rows(curves)), ""]
    parts += [
        "## BD-rate and BD-PSNR of vqcodec",
        "",
        "Negative BD-rate: vqcodec needs fewer bits for the same quality (PCHIP interpolation over "
        "the overlapping range; n/a where that covers less than half of vqcodec's range).",
        "",
        bd_markdown(bd),
        "",
    ]
    notices = _notices(meta)
    return "\n".join(parts + (["## Notices", "", *notices, ""] if notices else []))


def summary_markdown(curves: dict[str, dict], bd: list[dict], meta: dict, figures: dict[str, str]) -> str:
    """README snippet: plots, side-by-side picture, vqcodec rate table, BD table, link to the rest."""
    parts = [
        f"### Rate–distortion on {meta['dataset']} ({meta['images']} images)",
        "",
        f"Regenerate with `{meta['command']}`. {AVERAGING}",
        "",
    ]
    parts += [f"![{title}]({path})" for title, path in figures.items()] + [""]
    for curve in curves.values():
        if curve["codec"] == TEST_CODEC:
            parts += [f"**{curve['label']}** — {curve['description']}", "", rate_table(curve), ""]
    parts += [
        "Against JPEG at the same bpp (JPEG interpolated between its quality settings by PCHIP in log-rate, as in BD metrics):",
        "",
        same_rate_markdown(same_rate_rows(curves)),
        "",
    ]
    parts += [bd_markdown(bd), "", f"All rate points of every codec: [{meta['table']}]({meta['table']}).", ""]
    return "\n".join(parts + _notices(meta)) + "\n"


def write_json(path: Path, document: dict) -> None:
    """Write strict JSON (NaN/inf rejected so any parser can read it)."""
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
