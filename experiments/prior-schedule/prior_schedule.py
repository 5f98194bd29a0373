"""Which coding schedule suits a trained context prior: held-out bits per index of each stage
under several schedules (tile patterns per stage), same weights, ideal code lengths of the
integer coding path. The schedule only decides which tokens are known when a group is
predicted, so one trained prior can be scored under any of them.

Held-out grids are the last `--validation` grids of a `train-prior` token cache (the images
`train-prior` keeps out of training, with its default split).

    python experiments/prior-schedule/prior_schedule.py RUN_DIR/tokens.safetensors \\
        --prior vqcodec/weights/vqc-f8-s4-v3-prior.safetensors --out experiments/prior-schedule/results/prior_schedule.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from vqcodec.entropy.prior_file import load_prior_file
from vqcodec.train.config import PriorTrainConfig
from vqcodec.train.prior_loop import coding_bits
from vqcodec.train.token_cache import read_token_cache

SCHEDULES = {
    "quad everywhere": ("quad", "quad", "quad", "quad"),
    "checkerboard everywhere": ("checkerboard",) * 4,
    "pyramid everywhere": ("pyramid",) * 4,
    "pyramid, then one group": ("pyramid", "all", "all", "all"),
    "pyramid ×2, then one group": ("pyramid", "pyramid", "all", "all"),
    "quad ×2, then one group": ("quad", "quad", "all", "all"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tokens", type=Path, help="train-prior token cache (tokens.safetensors)")
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--validation", type=int, default=PriorTrainConfig.validation_images)
    parser.add_argument("--out", type=Path, default=Path("experiments/prior-schedule/results/prior_schedule.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = load_prior_file(args.prior)
    _, grids = read_token_cache(args.tokens)
    held_out = grids[-args.validation :]
    rows = []
    for name, tiles in SCHEDULES.items():
        schedule = tuple(tiles[: prior.config.stages])
        prior.config = dataclasses.replace(prior.config, schedule=schedule)
        started = time.perf_counter()
        bits = coding_bits(prior, held_out)
        rows.append(
            {"schedule": name, "tiles": schedule, "bits_per_index_stage": bits.tolist(), "seconds": time.perf_counter() - started}
        )
        print(f"{name:28s} " + " ".join(f"{b:.3f}" for b in bits))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"prior": str(args.prior), "held_out_grids": len(held_out), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
