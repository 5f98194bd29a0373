"""How well `--bpp` (`compress(bpp=...)`) spends a bit budget: for each target, the file's
real bpp and PSNR when it picks the highest quality point that fits (the default), against
the largest stage count at the model's tuned strength that fits (`rdo=1`, what it picked
before it chose among the quality points), and the encode time of each, in the same run.

    python benchmarks/bpp_target.py ../shared/data/kodak --targets 0.1 0.25 0.5 0.75 1.0 \\
        --out benchmarks/results/bpp_target

A target below an image's lowest rate is left out for that image (and counted).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from tqdm import tqdm

import vqcodec
from plotting import save_figure
from vqcodec.evaluate import image_files, stream_psnr
from vqcodec.imaging import prepare_image

# How each way of fitting is asked for: the default, and the tuned strength given, which
# keeps to stage counts.
WAYS = {"quality points": {}, "stage counts at rdo 1": {"rdo": 1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--every", type=int, default=1, help="measure every N-th image only")
    parser.add_argument("--model", default=None, help="zoo name (default: the shipped model)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    files = image_files([args.dataset])[:: args.every]
    rows = []
    with tqdm(total=len(files) * len(args.targets) * len(WAYS), unit="file", file=sys.stderr) as bar:
        for path in files:
            image = prepare_image(path).rgb
            pixels = image.shape[0] * image.shape[1]
            for target in args.targets:
                for way, options in WAYS.items():
                    bar.set_description(f"{path.name} {target} {way}")
                    started = time.perf_counter()
                    try:
                        data = vqcodec.compress(image, bpp=target, model=args.model, **options)
                    except ValueError as error:  # below this image's lowest rate
                        rows.append({"image": path.name, "target": target, "way": way, "refused": str(error)})
                        bar.update()
                        continue
                    seconds = time.perf_counter() - started
                    rows.append(
                        {
                            "image": path.name,
                            "target": target,
                            "way": way,
                            "bpp": len(data) * 8 / pixels,
                            "psnr": stream_psnr(image, data),
                            "stages": vqcodec.read_header(data).stages,
                            "encode_s": seconds,
                        }
                    )
                    bar.update()
    report = {
        "dataset": args.dataset.name,
        "images": [path.name for path in files],
        "model": vqcodec.model_info(args.model)["name"],
        "threads": torch.get_num_threads(),
        "summary": summarize(rows, args.targets),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bpp_target.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.out / "bpp_target.png")
    for target, ways in report["summary"].items():
        coded = {way: v for way, v in ways.items() if v["images"]}
        print(
            f"{target} bpp: "
            + "; ".join(f"{way} {v['bpp']:.4f} bpp {v['psnr']:.2f} dB {v['encode_s']:.2f} s" for way, v in coded.items())
        )
    print(f"wrote {args.out}")


def summarize(rows: list[dict], targets: list[float]) -> dict[str, dict[str, dict]]:
    """Per target and way: means over the images that both ways coded, and how many refused."""
    summary = {}
    for target in targets:
        at_target = [row for row in rows if row["target"] == target]
        refused = {row["image"] for row in at_target if "refused" in row}
        coded = [row for row in at_target if row["image"] not in refused]
        summary[str(target)] = {}
        for way in WAYS:
            mine = [row for row in coded if row["way"] == way]
            means = (
                {key: statistics.fmean(row[key] for row in mine) for key in ("bpp", "psnr", "stages", "encode_s")} if mine else {}
            )
            refusals = sum(1 for row in at_target if row["way"] == way and "refused" in row)
            summary[str(target)][way] = {"images": len(mine), "refused": refusals, **means}
    return summary


def plot(report: dict, path: Path) -> None:
    """Mean PSNR and mean real bpp against the target, per way of fitting."""
    figure, (quality, rate) = plt.subplots(1, 2, figsize=(12, 4.5))
    targets = [float(target) for target in report["summary"]]
    for way in WAYS:
        means = [report["summary"][str(target)][way] for target in report["summary"]]
        kept = [(t, m) for t, m in zip(targets, means, strict=True) if m.get("images")]
        quality.plot([t for t, _ in kept], [m["psnr"] for _, m in kept], "o-", label=way)
        rate.plot([t for t, _ in kept], [m["bpp"] for _, m in kept], "o-", label=way)
    rate.plot(targets, targets, "k:", lw=1, label="target")
    quality.set(title=f"--bpp on {report['dataset']} ({report['model']})", xlabel="target bpp", ylabel="PSNR (dB), mean")
    rate.set(title="bpp of the file, mean", xlabel="target bpp", ylabel="bpp")
    save_figure(figure, (quality, rate), path)


if __name__ == "__main__":
    main()
