"""What a new default model changes on Kodak against the one it replaces, from the RD
benchmark's curves of both (CompressAI-schema JSON; the replaced model's from the commit that
last shipped it):

    git show b7bfd29d:benchmarks/results/kodak/vqcodec-fidelity.json \\
        > benchmarks/results/model-change/vqc-f8-s8-fidelity.json   # and -realism
    python benchmarks/model_change.py --previous benchmarks/results/model-change/vqc-f8-s8 \\
        --current benchmarks/results/kodak/vqcodec --out benchmarks/results/model-change

Per decoder (`PREFIX-fidelity.json`, `PREFIX-realism.json`), PSNR and MS-SSIM of the new
model minus the old one's at the same bpp, both ways: at each rate the new model offers
inside the old one's range (the old curve interpolated there) and at each rate the old one
offered (the new curve interpolated there); curves are interpolated by PCHIP in log-rate, as
BD metrics do, and a rate outside the other curve's range reads None. Then BD-rate (PSNR,
MS-SSIM) of the new curve against the old over the rates both cover. Writes `model_change.json` and
`model_change.png` into `--out`. `--decoders fidelity` compares the fidelity decoders alone,
e.g. a training leg's model, which has no realism decoder yet, against the shipped one
(experiments/cpu-run). `--codecs benchmarks/results/kodak` adds the BD-rate (PSNR) of both
curves against each curve the RD benchmark committed there (WebP, AVIF, ..., the shipped
model's) and draws those curves thin in the PSNR panel: how far a candidate is from the
next-model issue's bar when both are coded alike.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plotting import draw_compared_curves, save_figure
from rd_bd import bd_rate, bd_rates_against, committed_curves, quality_ahead

DECODERS = ("fidelity", "realism")
METRICS = {"psnr": "PSNR (dB)", "ms-ssim": "MS-SSIM"}


# `vqcodec evaluate --json` writes CompressAI's names for the metrics the RD benchmark calls these.
EVALUATE_NAMES = {"psnr-rgb": "psnr", "ms-ssim-rgb": "ms-ssim"}


def read_curve(path: Path) -> dict:
    """A model's curve from the RD benchmark's JSON or from `vqcodec evaluate --json`."""
    document = json.loads(path.read_text())
    results = {EVALUATE_NAMES.get(key, key): value for key, value in document["results"].items()}
    return {"name": document["name"], "description": document.get("description", ""), **results}


def compare(previous: dict, current: dict, others: dict[str, dict[str, list[float]]]) -> dict:
    """The new curve against the old: gains at the old rates and BD-rates over the overlap;
    and both curves' BD-rate (PSNR) against each of `others` (`rd_bd.committed_curves`)."""
    out: dict = {
        "previous": previous["description"],
        "current": current["description"],
        "previous_bpp": previous["bpp"],
        "current_bpp": current["bpp"],
    }
    for metric in METRICS:
        out[f"{metric}_gain_at_current_rates"] = quality_ahead(previous["bpp"], previous[metric], current["bpp"], current[metric])
        # The old points' lead over the new curve, turned round.
        behind = quality_ahead(current["bpp"], current[metric], previous["bpp"], previous[metric])
        out[f"{metric}_gain_at_previous_rates"] = [None if lead is None else -lead for lead in behind]
        out[f"bd_rate_{metric}_percent"] = bd_rate(previous["bpp"], previous[metric], current["bpp"], current[metric])
    sides = {"previous": previous, "current": current}
    out["bd_rate_psnr_percent_vs"] = {side: bd_rates_against(others, c["bpp"], c["psnr"]) for side, c in sides.items()}
    out["current_top"] = {"bpp": current["bpp"][-1], "psnr": current["psnr"][-1], "ms-ssim": current["ms-ssim"][-1]}
    out["previous_top"] = {"bpp": previous["bpp"][-1], "psnr": previous["psnr"][-1], "ms-ssim": previous["ms-ssim"][-1]}
    return out


def plot(pairs: dict[str, tuple[dict, dict]], others: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METRICS), figsize=(11, 4.5))
    top_rate = 1.2 * max(max(curve["bpp"]) for pair in pairs.values() for curve in pair)
    draw_compared_curves(axes[0], others, top_rate)
    for axis, (metric, label) in zip(axes, METRICS.items(), strict=True):
        for i, (previous, current) in enumerate(pairs.values()):
            axis.plot(
                previous["bpp"], previous[metric], color=f"C{i}", ls="--", marker="x", label=f"{previous['name']} (previous)"
            )
            axis.plot(current["bpp"], current[metric], color=f"C{i}", marker="o", ms=4, label=f"{current['name']} (new)")
        axis.set_xlabel("bits per pixel")
        axis.set_ylabel(label)
    axes[0].set_title("Kodak, 24 images: the new model against the previous one")
    save_figure(figure, axes, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--previous", required=True, help="path prefix of the replaced model's curves")
    parser.add_argument("--current", required=True, help="path prefix of the new model's curves")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--decoders",
        nargs="+",
        choices=DECODERS,
        default=list(DECODERS),
        help="which decoders' curves to compare (a training leg's model has no realism decoder yet)",
    )
    parser.add_argument(
        "--codecs",
        type=Path,
        help="folder of the RD benchmark's curves (CompressAI JSON): both curves' BD-rate (PSNR) against each",
    )
    args = parser.parse_args()
    others = committed_curves(args.codecs) if args.codecs else {}
    pairs = {
        decoder: (read_curve(Path(f"{args.previous}-{decoder}.json")), read_curve(Path(f"{args.current}-{decoder}.json")))
        for decoder in args.decoders
    }
    report = {decoder: compare(previous, current, others) for decoder, (previous, current) in pairs.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_change.json").write_text(json.dumps(report, indent=1))
    plot(pairs, others, args.out / "model_change.png")

    def listed_percent(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.1f} %"

    def listed(gains: list[float | None]) -> str:
        return ", ".join("n/a" if g is None else f"{g:+.3f}" for g in gains)

    for decoder, row in report.items():
        print(
            f"{decoder}: PSNR gain at the new rates {listed(row['psnr_gain_at_current_rates'])} dB, "
            f"at the previous rates {listed(row['psnr_gain_at_previous_rates'])} dB; "
            f"BD-rate PSNR {listed_percent(row['bd_rate_psnr_percent'])}, "
            f"MS-SSIM {listed_percent(row['bd_rate_ms-ssim_percent'])}; "
            f"top {row['previous_top']['bpp']:.3f} → {row['current_top']['bpp']:.3f} bpp"
        )
        for side, rates in row["bd_rate_psnr_percent_vs"].items():
            if rates:
                print(f"  {side}: BD-rate PSNR " + ", ".join(f"vs {name} {listed_percent(v)}" for name, v in rates.items()))


if __name__ == "__main__":
    main()
