"""Would a context prior fitted on the indices the rate–distortion search writes code them better?

The shipped prior was trained on nearest-codeword indices, but `vqcodec encode` writes the
indices `quantize_for_rate` picks. This refits only the prior's neighbour pair tables
(`fit_neighbour_tables`, counted, no training) on training images' token grids, once from
the nearest codewords (the control: the same images, the same refit) and once from the
search's indices with the shipped λ, then scores Kodak for the shipped prior and both
refits, each with the nearest codewords and with the search against itself. BD-rate is
against the shipped prior with the nearest codewords.

    python experiments/rdo-refit/rdo_refit.py ../shared/data/train ../shared/data/kodak --every 2 \\
        --out experiments/rdo-refit/results
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vqcodec import zoo
from vqcodec.entropy.rdo import quantize_for_rate
from vqcodec.imaging import to_padded_tensor
from vqcodec.train.config import PriorTrainConfig
from vqcodec.train.data import list_images
from vqcodec.train.prior_tables import fit_neighbour_tables
from vqcodec.train.token_cache import token_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the RD helpers
from plotting import save_figure
from rd_bd import bd_rate
from rdo import latents, measure_image, summarize


def training_grids(loaded: zoo.LoadedModel, files: list[Path], lambdas: list[float]) -> dict[str, list[np.ndarray]]:
    """Token grids of the training images (sized as the prior's token cache), nearest and searched."""
    config, codec = PriorTrainConfig(), loaded.codec
    codebooks = codec.quantizer.codebooks()
    grids = {"nearest": [], "searched": []}
    for path in tqdm(files, desc="training tokens"):
        rgb = token_image(path, config.crop * codec.config.stride, config.max_side)
        with torch.inference_mode():
            latent = codec.encoder(to_padded_tensor(rgb, codec.config.stride))[0]
        grids["nearest"].append(quantize_for_rate(latent, codebooks, loaded.context_prior, [0.0] * len(codebooks)))
        grids["searched"].append(quantize_for_rate(latent, codebooks, loaded.context_prior, lambdas))
    return grids


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in results:
        axis.plot(
            row["context"],
            row["psnr"],
            marker="o",
            linestyle="-" if row["searched"] else ":",
            label=f"{row['prior']}, {'search' if row['searched'] else 'nearest'} ({row['bd_rate']:+.2f} %)",
        )
    axis.set_xlabel("bits per pixel (stage payloads, context prior)")
    axis.set_ylabel("PSNR (dB), fidelity decoder")
    axis.set_title("Kodak, 1–4 stages (BD-rate vs shipped, nearest)")
    save_figure(figure, (axis,), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train", type=Path, help="training images (the tables are counted there)")
    parser.add_argument("images", type=Path, help="evaluation images (e.g. Kodak)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th training image")
    parser.add_argument("--model", default=None, help="zoo model (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("experiments/rdo-refit/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    loaded = zoo.load_model(args.model)
    if not loaded.rdo_lambdas:
        parser.error(f"model {loaded.name!r} has no λ profile")
    lambdas = list(loaded.rdo_lambdas)
    files = list_images(args.train)[:: args.every]
    priors = {"shipped": loaded.context_prior}
    for name, grids in training_grids(loaded, files, lambdas).items():
        priors[f"tables from {name}"] = refit = copy.deepcopy(loaded.context_prior)
        fit_neighbour_tables(refit, grids)
    images = latents(loaded.codec, list_images(args.images))
    pixels = sum(image.shape[2] * image.shape[3] for image, _ in images)
    results = []
    for name, prior in priors.items():
        for searched in (False, True):
            rows = [
                measure_image(loaded.codec, prior.eval(), image, latent, lambdas if searched else [0.0] * len(lambdas))
                for image, latent in tqdm(images, desc=name, leave=False)
            ]
            results.append({"prior": name, "searched": searched, **summarize(rows, pixels)})
    anchor = results[0]
    for row in results:
        row["bd_rate"] = bd_rate(anchor["context"], anchor["psnr"], row["context"], row["psnr"])
        print(
            f"{row['prior']:>26} {'search ' if row['searched'] else 'nearest'}  saving % "
            f"{[round(100 * s, 1) for s in row['saving_at_stages']]}  BD-rate {row['bd_rate']:+.2f} %"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": loaded.name,
        "lambdas": lambdas,
        "train_images": len(files),
        "images": args.images.name,
        "image_count": len(images),
        "seconds": round(time.time() - started, 1),
        "results": results,
    }
    (args.out / "refit.json").write_text(json.dumps(report, indent=1))
    plot(results, args.out / "refit.png")


if __name__ == "__main__":
    main()
