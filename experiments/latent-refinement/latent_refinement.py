"""Where is the autoencoder's limit, in the encoder or in the decoder? Per-image refinement
of the latent.

The decoder is fixed; the encoder's latent is only its one-shot guess of the latent that the
decoder turns into the image. Adam steps on the latent of each image, against the MSE of its
decoded pixels and starting from the encoder's latent, show how far the decoder's own range
reaches:

- unquantized: the ceiling of any stage count, per iteration;
- through the quantizer at S stages (`vqcodec.refine.refine_latent`, the codec's `refine`
  option: nearest codewords, straight-through gradient, best iterate kept), at a few step counts.

    python experiments/latent-refinement/latent_refinement.py ../shared/data/kodak --images 6 \
        --out experiments/latent-refinement/results
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from plotting import save_figure  # noqa: E402
from vqcodec import zoo  # noqa: E402
from vqcodec.refine import LEARNING_RATE, refine_latent  # noqa: E402
from vqcodec.train.data import evenly_spaced  # noqa: E402

CEILING_ITERATIONS = (0, 10, 25, 50, 100, 200)
QUANTIZED_STEPS = (0, 10, 25, 50)


def psnr(decoded: torch.Tensor, image: torch.Tensor) -> float:
    return -10 * math.log10(float(torch.mean((decoded.clamp(0, 1) - image) ** 2)))


def ceiling(model, image: torch.Tensor, iterations: int) -> dict[int, float]:
    """PSNR of the unquantized latent after each of `CEILING_ITERATIONS` Adam steps."""
    decoder = model.decoders["fidelity"]
    with torch.no_grad():
        latent = model.encoder(image)
    latent.requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=LEARNING_RATE)
    scores = {}
    for iteration in range(iterations + 1):
        decoded = decoder(latent)
        if iteration in CEILING_ITERATIONS:
            scores[iteration] = psnr(decoded.detach(), image)
        if iteration == iterations:
            break
        optimizer.zero_grad()
        torch.mean((decoded - image) ** 2).backward()
        optimizer.step()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kodak_dir", type=Path)
    parser.add_argument("--model", default=None, help="zoo name or codec weights file (default: the shipped model)")
    parser.add_argument("--images", type=int, default=6, help="every (24 / N)-th image of the folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    loaded = zoo.load(args.model)
    model, stages = loaded.codec, loaded.codec.config.stages
    model.requires_grad_(False)
    files = sorted(args.kodak_dir.glob("*.png"))
    files = evenly_spaced(files, args.images)
    ceilings, quantized = [], []
    started = time.perf_counter()
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
        ceilings.append(ceiling(model, image, max(CEILING_ITERATIONS)))
        with torch.no_grad():
            latent = model.encoder(image)[0]
        scores = {}
        for steps in QUANTIZED_STEPS:
            refined = refine_latent(model, rgb, latent, stages, steps, torch.device("cpu"))
            with torch.no_grad():
                scores[steps] = psnr(model.decode_indices(model.quantizer.encode(refined[None], stages)), image)
        quantized.append(scores)
        print(
            path.name,
            f"ceiling {ceilings[-1][0]:.2f} -> {ceilings[-1][max(CEILING_ITERATIONS)]:.2f} dB,",
            f"{stages} stages {scores[0]:.2f} -> {scores[max(QUANTIZED_STEPS)]:.2f} dB",
            flush=True,
        )
    result = {
        "model": loaded.name,
        "images": [path.name for path in files],
        "lr": LEARNING_RATE,
        "threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - started,
        "unquantized": {str(i): float(np.mean([c[i] for c in ceilings])) for i in CEILING_ITERATIONS},
        f"{stages} stages": {str(s): float(np.mean([q[s] for q in quantized])) for s in QUANTIZED_STEPS},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "refine.json").write_text(json.dumps(result, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for name in ("unquantized", f"{stages} stages"):
        points = sorted((int(k), v) for k, v in result[name].items())
        axis.plot([k for k, _ in points], [v for _, v in points], "o-", label=name)
    axis.set(xlabel="Adam steps on the latent", ylabel="PSNR (dB)", title=f"latent refinement, {loaded.name}")
    save_figure(figure, (axis,), args.out / "refine.png", dpi=110)
    print(json.dumps({k: v for k, v in result.items() if k not in ("images",)}, indent=1))


if __name__ == "__main__":
    main()
