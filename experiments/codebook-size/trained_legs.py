"""K = 512 against K = 1,024 after training: two legs from the shipped model's networks, each
with fresh residual k-means codebooks, trained alike; then their held-out PSNR against the
raw bits per index position (stages × log2 K).

    python experiments/codebook-size/trained_legs.py init runs/k512/init.safetensors ../shared/data/train \
        --codebook-size 512 --stages 10
    python experiments/codebook-size/trained_legs.py init runs/k1024/init.safetensors ../shared/data/train \
        --codebook-size 1024 --stages 8
    vqcodec train out_dir=runs/k512/leg init_from=runs/k512/init.safetensors model.stages=10 \
        model.codebook_size=512 data_dir=../shared/data/train lr=1e-4 warmup_steps=200 \
        ms_ssim_weight=0 steps=30000 time_budget=30 fit_steps_to_budget=true threads=1 &
    vqcodec train out_dir=runs/k1024/leg init_from=runs/k1024/init.safetensors model.stages=8 ...
    python experiments/codebook-size/trained_legs.py compare "K=1024, 8 stages=runs/k1024/leg" \
        "K=512, 10 stages=runs/k512/leg" --out experiments/codebook-size/results/legs
    python experiments/codebook-size/trained_legs.py coded "K=1024, 8 stages=RDO_1024/rdo.json" \
        "K=512, 10 stages=RDO_512/rdo.json" --out experiments/codebook-size/results/legs

(`coded` reads `benchmarks/rdo.py` runs of each leg's weights with a context prior trained
on its tokens; the README has the commands.)

Both legs start from the same trained encoder and fidelity decoder (`vqc-f8-s8`'s) and from
codebooks fitted the same way (`codebook_size.py`'s residual k-means on training latents),
so neither starts with codebooks the networks were trained with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from vqcodec import zoo
from vqcodec.model import VQCodec
from vqcodec.train.checkpoint import export_weights
from vqcodec.train.data import list_images
from vqcodec.train.logger import read_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from codebook_size import RAW_BITS, initialise_residual, latent_vectors, raw_stages  # noqa: E402

from rd_bd import bd_quality, bd_rate  # noqa: E402


@torch.no_grad()
def initial_weights(out: Path, train: Path, codebook_size: int, stages: int, images: int) -> None:
    """The shipped model's encoder and fidelity decoder with new residual k-means codebooks."""
    shipped = zoo.load().codec
    codec = VQCodec(dataclasses.replace(shipped.config, codebook_size=codebook_size, stages=stages))
    networks = {k: v for k, v in shipped.state_dict().items() if k.startswith(("encoder.", "decoders.fidelity."))}
    codec.load_state_dict({**codec.state_dict(), **networks}, strict=True)
    paths = list_images(train)
    paths = [paths[i] for i in np.linspace(0, len(paths) - 1, images).round().astype(int)]
    initialise_residual(codec.quantizer, latent_vectors(shipped, paths))
    export_weights(codec, out, f"vqc-f8-s8's networks, {stages} stages of K={codebook_size} from residual k-means")


def final_curve(run: Path) -> dict:
    """The last validation row's PSNR per stage count, with raw bits per index position."""
    config = json.loads((run / "config.json").read_text())["model"]
    rows = [row for row in read_metrics(run) if "val/psnr_stages1" in row]
    last = rows[-1]
    stages, at_raw_bits = config["stages"], raw_stages(config["codebook_size"])
    return {
        "step": last["step"],
        "codebook_size": config["codebook_size"],
        "raw_bits": [s * math.log2(config["codebook_size"]) for s in range(1, stages + 1)],
        "psnr": [last[f"val/psnr_stages{s}"] for s in range(1, stages + 1)],
        "usage": [last.get(f"val/usage_stage{s}") for s in range(stages)],
        # PSNR at about RAW_BITS raw bits (8 stages of K = 1,024, 9 of 512) at each validation.
        "history": [[row["step"], row[f"val/psnr_stages{at_raw_bits}"]] for row in rows],
    }


def compare(runs: dict[str, Path], out: Path) -> None:
    curves = {name: final_curve(run) for name, run in runs.items()}
    anchor = next(iter(curves.values()))
    report = {
        "curves": curves,
        # BD metrics on raw bits over the span both cover (log-rate, PCHIP, as rd_bd does).
        "bd_psnr_vs_first": {
            name: bd_quality(anchor["raw_bits"], anchor["psnr"], curve["raw_bits"], curve["psnr"])
            for name, curve in curves.items()
        },
        "bd_rate_vs_first": {
            name: bd_rate(anchor["raw_bits"], anchor["psnr"], curve["raw_bits"], curve["psnr"]) for name, curve in curves.items()
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "legs.json").write_text(json.dumps(report, indent=2))
    figure, (rd_axis, step_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in curves.items():
        rd_axis.plot(curve["raw_bits"], curve["psnr"], "o-", ms=3, label=f"{name} (step {curve['step']})")
        history = np.array(curve["history"])
        step_axis.plot(history[:, 0], history[:, 1], "o-", ms=3, label=f"{name}: {raw_stages(curve['codebook_size'])} stages")
    rd_axis.set_xlabel("raw bits per index position (stages × log2 K)")
    rd_axis.set_ylabel("held-out PSNR (dB)")
    rd_axis.set_title("After the legs")
    step_axis.set_xlabel("step")
    step_axis.set_ylabel(f"held-out PSNR at about {RAW_BITS} raw bits (dB)")
    step_axis.set_title("During the legs")
    for axis in (rd_axis, step_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "legs.png", dpi=120)
    for name, curve in curves.items():
        print(f"{name}: step {curve['step']}, PSNR {[round(p, 2) for p in curve['psnr']]}, usage {curve['usage']}")
    print(f"BD-PSNR vs the first: {report['bd_psnr_vs_first']}, BD-rate (raw bits): {report['bd_rate_vs_first']}")


def coded(runs: dict[str, Path], out: Path) -> None:
    """BD-rate of each leg's coded curves (benchmarks/rdo.py's rdo.json: context-prior bpp and
    PSNR per stage count, per profile) against the first leg's, profile by profile."""
    reports = {name: json.loads(path.read_text()) for name, path in runs.items()}
    anchor = next(iter(reports.values()))
    result: dict[str, dict] = {}
    for name, report in reports.items():
        result[name] = {}
        for profile, base in zip(report["profiles"], anchor["profiles"], strict=True):
            result[name][profile["name"]] = {
                "bpp": profile["context"],
                "psnr": profile["psnr"],
                "context_saving": profile["saving_at_stages"],
                "bd_rate_vs_first": bd_rate(base["context"], base["psnr"], profile["context"], profile["psnr"]),
            }
            print(f"{name}, profile {profile['name']}: BD-rate vs the first {result[name][profile['name']]['bd_rate_vs_first']}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "coded.json").write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write a leg's starting weights")
    init.add_argument("out", type=Path)
    init.add_argument("train", type=Path)
    init.add_argument("--codebook-size", type=int, required=True)
    init.add_argument("--stages", type=int, required=True)
    init.add_argument("--images", type=int, default=200, help="evenly spaced training images whose latents fit the codebooks")
    legs = commands.add_parser("compare", help="compare finished legs: NAME=RUN_DIR, the anchor first")
    legs.add_argument("runs", nargs="+")
    legs.add_argument("--out", type=Path, required=True)
    coding = commands.add_parser("coded", help="compare the legs' rdo.py runs: NAME=rdo.json, the anchor first")
    coding.add_argument("runs", nargs="+")
    coding.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.command == "init":
        initial_weights(args.out, args.train, args.codebook_size, args.stages, args.images)
        print(f"wrote {args.out}")
    else:
        # The last "=" splits: names such as "K=512" hold one.
        named = {name: Path(path) for name, _, path in (spec.rpartition("=") for spec in args.runs)}
        (compare if args.command == "compare" else coded)(named, args.out)


if __name__ == "__main__":
    main()
