"""Which Adam learning rate should `--refine` use? Its 0.01 came from the unquantized ceiling
runs of up to 200 steps (`latent_refinement.py`); `--refine` runs 10 or 25 steps through the
quantizer, where a larger step may reach further in time.

On training images only (every N-th, never Kodak), per learning rate and step count: the PSNR
of the refined latent's nearest codewords at a few stage counts, as `refine_latent` (best
iterate kept) gives it, against no refinement.

    python experiments/latent-refinement/learning_rate.py ../shared/data/train --images 10 \
        --out experiments/latent-refinement/results-learning-rate
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

from vqcodec import coding, refine, zoo
from vqcodec.evaluate import score
from vqcodec.train.data import evenly_spaced, list_images

LEARNING_RATES = (0.01, 0.02, 0.03, 0.05)
STEPS = (10, 25)
STAGE_COUNTS = (3, 10)
# (steps, lr) per stage count: no refinement first, the anchor of every gain.
RUNS = [(0, 0.0)] + [(steps, lr) for lr in LEARNING_RATES for steps in STEPS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("--images", type=int, default=10, help="evenly spaced images of the folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    loaded = zoo.load()
    codec = loaded.codec
    files = list_images(args.train_dir)
    files = evenly_spaced(files, args.images)
    cpu = torch.device("cpu")
    scores: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        latent = coding.latent_of(codec, rgb)
        for stages in STAGE_COUNTS:
            for steps, lr in RUNS:
                started = time.perf_counter()
                with mock.patch.object(refine, "LEARNING_RATE", lr):
                    refined = refine.refine_latent(codec, rgb, latent, stages, steps, cpu) if steps else latent
                key = f"{stages} stages, {steps} steps" + (f", lr {lr}" if steps else "")
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started
                indices = codec.quantizer.encode(refined[None], stages)[0]
                scores.setdefault(key, []).append(score(rgb, coding.reconstruct(codec, indices, *rgb.shape[:2]))["psnr"])
        print(path.name, flush=True)
    result = {
        "model": loaded.name,
        "images": [str(path.relative_to(args.train_dir)) for path in files],
        "threads": torch.get_num_threads(),
        "psnr": {key: float(np.mean(values)) for key, values in scores.items()},
        "gain_db": {
            key: float(np.mean(values) - np.mean(scores[key.split(", ")[0] + ", 0 steps"])) for key, values in scores.items()
        },
        "seconds_per_image": {key: value / len(files) for key, value in seconds.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning_rate.json").write_text(json.dumps(result, indent=1) + "\n")
    for key, gain in result["gain_db"].items():
        print(f"{key:>32}: {result['psnr'][key]:.3f} dB ({gain:+.3f})")


if __name__ == "__main__":
    main()
