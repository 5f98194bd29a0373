"""What latent refinement (`compress(refine=N)`, `vqcodec/refine.py`) buys on a dataset:
the rate–distortion curve over every stage count per step count, BD-rate and BD-PSNR against
no refinement, BD-rate against the other codecs' curves of the RD benchmark, and encode time.

    python benchmarks/refine.py ../shared/data/kodak --steps 0 10 25 \
        --codecs benchmarks/results/kodak --out benchmarks/results/refine
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from plotting import save_figure
from rd_bd import bd_quality, bd_rate, bd_rates_against, committed_curves
from vqcodec.evaluate import evaluate, image_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 10, 25], help="step counts, the first the anchor")
    parser.add_argument("--every", type=int, default=1, help="measure every N-th image only")
    parser.add_argument("--model", default=None, help="zoo name or codec weights file (default: the shipped model)")
    parser.add_argument("--codecs", type=Path, help="folder of the RD benchmark's codec JSON files (CompressAI schema)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--replot", action="store_true", help="redraw refine.png from the folder's refine.json")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads((args.out / "refine.json").read_text()), args.out / "refine.png")
        return
    files = image_files([args.dataset])[:: args.every]
    curves = {}
    for steps in args.steps:
        started = time.perf_counter()
        document = evaluate(files, model=args.model, refine=steps, progress=True)
        results = document["results"]
        curves[steps] = {
            "bpp": results["bpp"],
            "psnr": results["psnr-rgb"],
            "ms_ssim": results["ms-ssim-rgb"],
            "encode_s": results["encoding_time"],
            "decode_s": results["decoding_time"],
            "seconds": time.perf_counter() - started,
        }
        print(f"refine {steps}: " + ", ".join(f"{b:.4f} bpp {p:.2f} dB" for b, p in zip(results["bpp"], results["psnr-rgb"])))
    anchor = curves[args.steps[0]]
    others = committed_curves(args.codecs) if args.codecs else {}
    for curve in curves.values():
        curve["bd_rate_vs_anchor"] = bd_rate(anchor["bpp"], anchor["psnr"], curve["bpp"], curve["psnr"])
        curve["bd_psnr_vs_anchor"] = bd_quality(anchor["bpp"], anchor["psnr"], curve["bpp"], curve["psnr"])
        curve["bd_rate_vs"] = bd_rates_against(others, curve["bpp"], curve["psnr"])
    report = {
        "dataset": args.dataset.name,
        "images": [path.name for path in files],
        "model": document["name"],
        "threads": torch.get_num_threads(),
        "note": "bpp from the real file sizes; BD against the other codecs uses each one's committed curve "
        "(measured on every image of the dataset)",
        "curves": {str(steps): curve for steps, curve in curves.items()},
        "codecs": others,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "refine.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.out / "refine.png")
    print(f"wrote {args.out}")


def plot(report: dict, path: Path) -> None:
    """RD curves (the other codecs thin, for reference) and encode time per stage count."""
    figure, (rd, timing) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, other in report["codecs"].items():
        rd.plot(other["bpp"], other["psnr"], "--", lw=1, alpha=0.7, label=name)
    curves = report["curves"]
    anchor = next(iter(curves))
    for steps, curve in curves.items():
        bd = curve["bd_rate_vs_anchor"]
        label = f"refine {steps}" + (f" (BD-rate {bd:+.1f} %)" if steps != anchor and bd is not None else "")
        rd.plot(curve["bpp"], curve["psnr"], "o-", lw=2.2, label=label)
        timing.plot(range(1, len(curve["bpp"]) + 1), curve["encode_s"], "o-", label=f"refine {steps}")
    top = max(max(c["bpp"]) for c in curves.values())
    low = min(min(c["psnr"]) for c in curves.values())
    high = max(max(c["psnr"]) for c in curves.values())
    rd.set(xlim=(0, top * 1.25), ylim=(low - 1.5, high + 1.5), xlabel="bpp", ylabel="PSNR (dB)")
    rd.set_title(f"latent refinement, {report['dataset']} ({report['model']})")
    timing.set(title="encode time per image (s, mean)", xlabel="stages", ylabel="s")
    save_figure(figure, (rd, timing), path, dpi=110)


if __name__ == "__main__":
    main()
