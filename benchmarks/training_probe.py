"""Compare training runs (architectures, learning rates, loss weights) by what they reach per
step and per hour: validation PSNR (held-out training crops) at each validation step, against
steps and against the run's wall-clock time, with its parameter count and training speed.

    vqcodec train out_dir=runs/probe/base data_dir=../shared/data/train steps=1500 lr=7e-4 \
        warmup_steps=200 batch_size=16 crop=128 ms_ssim_weight=0 threads=2 validate_every=500 \
        commit_weight=0.25
    vqcodec train out_dir=runs/probe/wide ... model.width_fine=96 model.width_coarse=192 \
        'model.encoder_blocks=[2,3]' 'model.decoder_blocks=[4,3]'
    vqcodec train out_dir=runs/probe/commit05 ... commit_weight=0.05
    vqcodec train out_dir=runs/probe/commit01 ... commit_weight=0.01
    python benchmarks/training_probe.py "shipped, lr 7e-4=runs/probe/base" \
        "wide, lr 7e-4=runs/probe/wide" --out experiments/architecture/results
    python benchmarks/training_probe.py "commitment 0.25=runs/probe/base" \
        "commitment 0.05=runs/probe/commit05" "commitment 0.01=runs/probe/commit01" \
        --out experiments/commitment/results/probe
    python benchmarks/training_probe.py "uniform (control)=benchmarks/results/training/stage-weights-control" \
        "weights 1:1:2:4=benchmarks/results/training/vqc-f8-s4-v3" --from-step 45000 \
        --out experiments/stage-weights/results

A run in legs that each start a fresh schedule from the last one's weights (`init_from`,
docs/models.md "Training states") counts its steps from 0 in each leg; `--legs` plots the
legs, named in order, as one run:

    python benchmarks/training_probe.py "leg 1=RUN1" "leg 2=RUN2" --legs --plot-stages 10 --out OUT

The committed results were made from the logs in benchmarks/results/training/ (each run's
config.json and metrics.jsonl.xz), which this script reads as it reads a run folder. A run trained
in legs keeps one config per leg (config-stepsA-B.json) instead: the first is read (with
--from-step, the leg's that covers that step); legs may change the schedule but never the
model or the batch.

Wall-clock time per step comes from the run's own logged images/s (the mean since the run
started), so runs are comparable only when they ran on the same machine under the same load.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from plotting import save_figure
from vqcodec.model import VQCodec
from vqcodec.train.config import TrainConfig
from vqcodec.train.logger import read_metrics

TRAIN_WINDOW = 5000


def run_config_path(run_dir: Path, step: int = 0) -> Path:
    """The run's config, or of a run in legs, the config of the last leg starting at or before `step`."""
    if (run_dir / "config.json").is_file():
        return run_dir / "config.json"
    legs = {int(path.stem.removeprefix("config-steps").split("-")[0]): path for path in run_dir.glob("config-steps*.json")}
    if not legs:
        raise SystemExit(f"{run_dir} has no config.json nor config-stepsA-B.json")
    return legs[max((start for start in legs if start <= step), default=min(legs))]


def summarize(run_dir: Path, until_step: int | None = None, from_step: int = 0) -> dict:
    """Parameters, speed, and validation PSNR per stage count and codebook usage per stage
    of the run in `run_dir`, from `from_step` and up to `until_step` if given."""
    config = TrainConfig.from_dict(json.loads(run_config_path(run_dir, from_step).read_text()))
    rows = read_metrics(run_dir)
    speeds = [row["train/images_per_s"] for row in rows if "train/images_per_s" in row]
    model = VQCodec(config.model)
    stages = range(1, config.model.stages + 1)
    validations = [
        row
        for row in rows
        if "val/psnr_stages1" in row and row["step"] >= from_step and (until_step is None or row["step"] <= until_step)
    ]
    if not validations:
        raise SystemExit(f"{run_dir} has no validation between steps {from_step} and {until_step or 'its end'}")
    images_per_s = speeds[-1]
    last_step = validations[-1]["step"]
    # Training terms of the last TRAIN_WINDOW steps compared, where each run has settled.
    window = [row for row in rows if "train/commit" in row and last_step - TRAIN_WINDOW < row["step"] <= last_step]
    return {
        "model": json.loads(config.model.to_json()),
        "encoder_parameters": sum(p.numel() for p in model.encoder.parameters()),
        "decoder_parameters": sum(p.numel() for p in model.decoders["fidelity"].parameters()),
        "batch_size": config.batch_size,
        "leg": {"lr": config.lr, "commit_weight": config.commit_weight, "ms_ssim_weight": config.ms_ssim_weight},
        "crop": config.crop,
        "images_per_s": images_per_s,
        "train_window": {
            "steps": [window[0]["step"], last_step],
            **{key: sum(row[f"train/{key}"] for row in window) / len(window) for key in ("mse", "commit")},
        },
        "validation": [
            {
                "step": row["step"],
                "hours": row["step"] * config.batch_size / images_per_s / 3600,
                "psnr": [row[f"val/psnr_stages{s}"] for s in stages],
                "usage": [row[f"val/usage_stage{s - 1}"] for s in stages],
            }
            for row in validations
        ],
    }


def chained(runs: dict[str, dict]) -> dict[str, dict]:
    """Consecutive legs of one run (each started from the last one's weights on a fresh
    schedule, so each counts its steps from 0) with their steps and hours counted from the
    first leg's start instead."""
    steps, hours = 0, 0.0
    legs = {}
    for name, run in runs.items():
        points = [{**point, "step": point["step"] + steps, "hours": point["hours"] + hours} for point in run["validation"]]
        legs[name] = {**run, "validation": points, "starts_at": {"step": steps, "hours": hours}}
        steps, hours = points[-1]["step"], points[-1]["hours"]
    return legs


def plot(runs: dict[str, dict], out: Path, stage_counts: list[int] | None = None) -> None:
    """PSNR per step and per hour at `stage_counts` (default: 1 and each run's top), and the
    first stage's codebook usage."""
    figure, (by_step, by_time, usage) = plt.subplots(1, 3, figsize=(17, 4.5))
    for name, run in runs.items():
        top = len(run["validation"][0]["psnr"])
        for count, style in zip(stage_counts or [1, top], itertools.cycle(("o-", "s--", "^:", "d-.")), strict=False):
            steps = [point["step"] for point in run["validation"]]
            hours = [point["hours"] for point in run["validation"]]
            psnr = [point["psnr"][count - 1] for point in run["validation"]]
            label = f"{name}, {count} stage{'s' if count > 1 else ''}"
            (line,) = by_step.plot(steps, psnr, style, label=label)
            by_time.plot(hours, psnr, style, color=line.get_color(), label=label)
        usage.plot(steps, [point["usage"][0] for point in run["validation"]], "o-", color=line.get_color(), label=name)
    by_step.set(title="validation PSNR per step", xlabel="step", ylabel="dB")
    by_time.set(title="validation PSNR per hour of training (this machine)", xlabel="hours", ylabel="dB")
    # A collapse (few codewords in use) is what a too-high learning rate looks like here.
    usage.set(title="codebook usage of stage 1 (validation crops)", xlabel="step", ylim=(0, 1.05))
    save_figure(figure, (by_step, by_time, usage), out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "runs", nargs="+", metavar="NAME=RUN_DIR", help="a label and a training run's folder (the label ends at the last '=')"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for probe.json and probe.png")
    parser.add_argument(
        "--until-step", type=int, help="compare validations up to this step only (a longer run against a shorter one)"
    )
    parser.add_argument(
        "--from-step",
        type=int,
        default=0,
        help="compare validations from this step on (legs that branch from one training state)",
    )
    parser.add_argument(
        "--plot-stages",
        type=int,
        nargs="+",
        metavar="N",
        help="stage counts to plot (default: 1 and each run's top); one alone shows small gaps",
    )
    parser.add_argument(
        "--legs",
        action="store_true",
        help="the runs are consecutive legs of one run, in order: count steps and hours from the first one's start",
    )
    args = parser.parse_args()
    if args.legs and (args.from_step or args.until_step is not None):
        parser.error("--legs takes every leg whole: no --from-step or --until-step")
    if args.plot_stages and min(args.plot_stages) < 1:
        parser.error("--plot-stages takes stage counts of at least 1")
    if any("=" not in item for item in args.runs):
        parser.error("each run is NAME=RUN_DIR")
    runs = {
        name: summarize(Path(folder), args.until_step, args.from_step)
        for name, folder in (item.rsplit("=", 1) for item in args.runs)
    }
    for name, run in runs.items():
        if args.plot_stages and max(args.plot_stages) > run["model"]["stages"]:
            parser.error(f"{name} has {run['model']['stages']} stages, cannot plot {max(args.plot_stages)}")
    if args.legs:
        runs = chained(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(runs, indent=1))
    plot(runs, args.out / "probe.png", args.plot_stages)
    for name, run in runs.items():
        last = run["validation"][-1]
        print(
            f"{name}: {run['encoder_parameters'] / 1e6:.2f} M + {run['decoder_parameters'] / 1e6:.2f} M parameters, "
            f"{run['images_per_s']:.1f} images/s; step {last['step']} ({last['hours']:.2f} h): "
            + " / ".join(f"{value:.2f}" for value in last["psnr"])
            + " dB"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
