"""Plot a training run's logged metrics: validation PSNR per stage count, training MSE and
codebook perplexity over steps.

    python benchmarks/training_curves.py RUN_DIR --out benchmarks/results/training/NAME.png

RUN_DIR holds the run's metrics.jsonl (or, as committed, metrics.jsonl.xz).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from vqcodec.train.logger import read_metrics


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(row["step"], row[key]) for row in rows if key in row]
    return [p[0] for p in points], [p[1] for p in points]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = read_metrics(args.run_dir)
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    stage_keys = sorted({k for row in rows for k in row if k.startswith("val/psnr_stages")})
    for key in stage_keys:
        left.plot(*series(rows, key), "o-", label=key.removeprefix("val/psnr_stages") + " stage(s)")
    left.set(title="validation PSNR (held-out training crops)", xlabel="step", ylabel="dB")
    left.legend()
    middle.plot(*series(rows, "train/mse"), lw=0.6)
    middle.set(title="training MSE", xlabel="step", yscale="log")
    for key in sorted({k for row in rows for k in row if k.startswith("codebook/perplexity_stage")}):
        right.plot(*series(rows, key), lw=0.6, label=key.removeprefix("codebook/perplexity_"))
    right.set(title="codebook perplexity per batch (K=1024)", xlabel="step")
    right.legend()
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
