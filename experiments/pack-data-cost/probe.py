"""What does training on the packed copy of the training set cost (issue 19, point 4)?

Trains the default training config (the shipped architecture) from scratch twice, side by
side with one thread each and the same seed: once on the packed copy (`vqcodec pack-data`
defaults: shorter side 256, WebP quality 74) and once on the original photos. Both runs hold
out the same 24 images. Then scores both final models on the same images: the held-out photos
at their original resolution (256×256 centre crops) and the 24 Kodak images, PSNR at 1..S
stages. Writes results.json and probe.png to --out.

    python experiments/pack-data-cost/probe.py --packed data/train --original ../shared/data/train \
        --kodak ../shared/data/kodak --runs runs/pack-data-cost --out experiments/pack-data-cost

A stopped run resumes from its last checkpoint (every 500 steps); --evaluate-only scores the
weights the runs have written so far (each checkpoint exports them) without training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from vqcodec.train.config import TrainConfig
from vqcodec.train.data import CenterCrops, list_images, load_rgb, split_files
from vqcodec.train.logger import read_metrics
from vqcodec.train.loop import validate
from vqcodec.zoo import load_codec_file

RUNS = ("packed", "original")


def weights_step(run: Path) -> int:
    """The step of the weights a run last exported (0 if none yet)."""
    path = run / "weights.safetensors"
    if not path.exists():
        return 0
    with safe_open(str(path), "pt") as handle:
        return int(handle.metadata()["description"].split()[-1])  # "vqvae step N"


def train_side_by_side(data: dict[str, Path], runs: Path, steps: int) -> None:
    """Both runs at once, one thread each, resumed where a run stopped; a finished run is skipped."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    jobs = []
    for name in RUNS:
        if weights_step(runs / name) >= steps:
            continue
        command = [
            sys.executable,
            "-m",
            "vqcodec.train",
            "--resume",
            f"data_dir={data[name]}",
            f"out_dir={runs / name}",
            f"steps={steps}",
            "threads=1",
            "seed=0",
            "validate_every=500",
            "checkpoint_every=500",
        ]
        log = open(runs / f"{name}.log", "a")
        jobs.append((name, subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)))
    for name, job in jobs:
        if job.wait() != 0:
            raise RuntimeError(f"run {name} failed: see {runs / name}.log")


def validation_curve(run: Path) -> dict[int, dict[str, float]]:
    """The run's own validation rows (its held-out crops), by step."""
    rows = read_metrics(run)
    return {row["step"]: {k: v for k, v in row.items() if k.startswith("val/psnr")} for row in rows if "val/psnr_stages1" in row}


def mean_psnr(model, images: list[torch.Tensor]) -> dict[int, float]:
    """Mean PSNR per stage count over `images` (each `[3,H,W]`, sides multiples of the stride)."""
    sums: dict[int, float] = {}
    for image in images:
        scores = validate(model, image[None], 1)
        for s in range(1, model.config.stages + 1):
            sums[s] = sums.get(s, 0.0) + scores[f"val/psnr_stages{s}"]
    return {s: total / len(images) for s, total in sums.items()}


def test_images(original: Path, kodak: Path) -> dict[str, list[torch.Tensor]]:
    """The held-out photos (the runs' validation files, at original resolution) and Kodak."""
    config = TrainConfig()
    _, held_out = split_files(list_images(original), config.validation_images)
    to_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255.0  # noqa: E731
    return {
        "held-out photos, original resolution (256² centre crops)": list(CenterCrops(held_out, config.validation_crop)),
        "Kodak (24 images)": [to_tensor(load_rgb(path, 8)) for path in list_images(kodak)],
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(results["final"])
    fig, axes = plt.subplots(1, 1 + len(sets), figsize=(4.6 * (1 + len(sets)), 3.8))
    for name, style in zip(RUNS, ("-", "--")):
        curve = results["curves"][name]
        steps = sorted(curve, key=int)
        for s in (1, 4):
            axes[0].plot(
                [int(k) for k in steps],
                [curve[k][f"val/psnr_stages{s}"] for k in steps],
                style + "o",
                label=f"{name}, {s} stage{'s' * (s > 1)}",
            )
    axes[0].set(xlabel="step", ylabel="PSNR (dB)", title="own held-out crops, during training")
    axes[0].legend(fontsize=8)
    for ax, test_set in zip(axes[1:], sets):
        for name, style in zip(RUNS, ("-", "--")):
            scores = results["final"][test_set][name]
            ax.plot([int(s) for s in scores], list(scores.values()), style + "o", label=name)
        ax.set(xlabel="stages", ylabel="PSNR (dB)", title=test_set, xticks=[1, 2, 3, 4])
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
    at = sorted(set(results["evaluated_at_step"].values()))
    fig.suptitle(
        f"trained on the packed copy vs the original photos: the models at step {'/'.join(map(str, at))} of {results['steps']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packed", type=Path, required=True)
    parser.add_argument("--original", type=Path, required=True)
    parser.add_argument("--kodak", type=Path, required=True)
    parser.add_argument("--runs", type=Path, default=Path("runs/pack-data-cost"))
    parser.add_argument("--out", type=Path, default=Path("experiments/pack-data-cost"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--evaluate-only", action="store_true", help="score the weights written so far")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.evaluate_only:
        train_side_by_side({"packed": args.packed, "original": args.original}, args.runs, args.steps)
    torch.set_num_threads(2)
    models = {name: load_codec_file(args.runs / name / "weights.safetensors") for name in RUNS}
    tests = test_images(args.original, args.kodak)
    final = {test_set: {name: mean_psnr(model, images) for name, model in models.items()} for test_set, images in tests.items()}
    evaluated = {name: weights_step(args.runs / name) for name in RUNS}
    results = {
        "steps": args.steps,
        "evaluated_at_step": evaluated,
        "config": "TrainConfig defaults, steps and threads=1 set, seed 0",
        "packed_bytes": sum(p.stat().st_size for p in list_images(args.packed)),
        "original_bytes": sum(p.stat().st_size for p in list_images(args.original)),
        "curves": {name: validation_curve(args.runs / name) for name in RUNS},
        "final": final,
        "packed_minus_original_db": {
            test_set: {s: scores["packed"][s] - scores["original"][s] for s in scores["packed"]}
            for test_set, scores in final.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(json.loads(json.dumps(results)), args.out / "probe.png")
    print(json.dumps(results["packed_minus_original_db"], indent=1))


if __name__ == "__main__":
    main()
