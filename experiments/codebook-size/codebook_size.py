"""Smaller codebooks, more stages: what they cost in rate–distortion and save in decode time.

    python experiments/codebook-size/codebook_size.py ../shared/data/train ../shared/data/kodak \
        --out experiments/codebook-size/results

The context prior does the same work per index for every stage, a row of K frequencies, so
an 8-stage decode costs about twice a 4-stage one and leaves the next model's decoder little
room under the speed bar (experiments/decoder-cost). With K = 512 a row is half as long, but
a stage carries 9 bits instead of 10. Two questions:

1. Rate–distortion, without training a model: the shipped encoder's latents of training
   images are quantized by residual k-means codebooks of K = 256, 512 and 1024 (the same
   fitting for all, stage after stage on the residuals), and Kodak's latents quantized by
   them are decoded by the shipped fidelity decoder. Bits are each stage's indices coded with
   that stage's index frequencies on the training latents (a static prior, add-½ smoothing).
   The shipped model's trained codebooks are the control for the fitting.
2. Decode time of the context prior alone, per K and stage count, with the shipped prior's
   architecture (width 32, 1 block, stages 1–2 in the pyramid tile, the rest in one group),
   randomly initialised (its time does not depend on its values), on uniformly random
   indices of a Kodak-sized grid (64×96), timed in the same rounds
   (`benchmarks/speed.py`'s `timed_rounds`), next to the shipped prior on real indices.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from vqcodec import zoo
from vqcodec.entropy.context import ContextPrior, PriorConfig
from vqcodec.entropy.grid_coding import decode_grid, encode_grid
from vqcodec.model.quantizer import ResidualQuantizer
from vqcodec.train.data import list_images

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from rd_bd import bd_rate  # noqa: E402
from speed import timed_rounds  # noqa: E402

CODEBOOK_SIZES = (256, 512, 1024)
RAW_BITS = 80  # the shipped model's 8 stages of K = 1,024, per index position
EXTRA_STAGES = 3  # stages fitted past RAW_BITS' worth, to see where each curve flattens
CROP = 256
GRID = (64, 96)  # a Kodak image's index grid at stride 8


def image_tensor(path: Path, crop: int | None = None) -> torch.Tensor:
    """`[1, 3, H, W]` in [0, 1]; the centre `crop`² when given, else cut to multiples of 8."""
    image = Image.open(path).convert("RGB")
    if crop is not None:
        left, top = (image.width - crop) // 2, (image.height - crop) // 2
        image = image.crop((left, top, left + crop, top + crop))
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    h, w = pixels.shape[2] // 8 * 8, pixels.shape[3] // 8 * 8
    return pixels[:, :, :h, :w]


@torch.no_grad()
def latent_vectors(codec, paths: list[Path], crop: int | None = CROP) -> torch.Tensor:
    """`[N, D]` latent vectors of `paths` (their centre `crop`², or whole when None)."""
    latents = [codec.encoder(image_tensor(path, crop)) for path in paths]
    return torch.cat([z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]) for z in latents])


@torch.no_grad()
def initialise_residual(quantizer: ResidualQuantizer, vectors: torch.Tensor, seed: int = 0) -> None:
    """Residual k-means: stage s starts (as training starts it) from what stages < s leave of
    `vectors` `[N, D]`."""
    generator = torch.Generator().manual_seed(seed)
    residual = vectors.clone()
    for s in range(len(quantizer.stages)):
        stage = quantizer.stage(s)
        stage.initialize(residual, generator)
        residual -= stage.codebook[stage.nearest(residual)]


def fitted_quantizer(vectors: torch.Tensor, k: int, stages: int) -> ResidualQuantizer:
    """`stages` residual k-means codebooks of `k` codewords fitted to `vectors` `[N, D]`."""
    quantizer = ResidualQuantizer(stages, k, vectors.shape[1])
    initialise_residual(quantizer, vectors)
    return quantizer


def code_lengths(indices: torch.Tensor, k: int) -> torch.Tensor:
    """`[K]` bits of each index under the frequencies of `indices` (add-½ smoothing)."""
    counts = torch.bincount(indices, minlength=k).double() + 0.5
    return -torch.log2(counts / counts.sum())


@torch.no_grad()
def rate_distortion(codec, train: list[Path], kodak: list[Path]) -> dict:
    """Mean bpp and PSNR on `kodak` at every stage count, per quantizer."""
    vectors = latent_vectors(codec, train)
    quantizers = {f"k-means K={k}": fitted_quantizer(vectors, k, raw_stages(k) + EXTRA_STAGES) for k in CODEBOOK_SIZES}
    quantizers["shipped K=1024 (trained)"] = codec.quantizer
    lengths = {}  # per quantizer and stage, `[K]` bits of each index on the training latents
    for name, quantizer in quantizers.items():
        k, stages = quantizer.stage(0).codebook.shape[0], len(quantizer.stages)
        indices = quantizer.encode(vectors[:, :, None, None], stages)[:, :, 0, 0]  # [N, S]
        lengths[name] = [code_lengths(indices[:, s], k) for s in range(stages)]
    totals = {name: np.zeros((len(quantizer.stages), 2)) for name, quantizer in quantizers.items()}
    for path in kodak:
        image = image_tensor(path)
        latent = codec.encoder(image)  # [1, D, h, w]
        for name, quantizer in quantizers.items():
            indices = quantizer.encode(latent, len(quantizer.stages))  # [1, S, h, w]
            bits = 0.0
            for stage in range(indices.shape[1]):
                bits += float(lengths[name][stage][indices[:, stage]].sum())
                decoded = codec.decoders["fidelity"](quantizer.decode(indices[:, : stage + 1])).clamp(0, 1)
                decoded = (decoded * 255).round() / 255
                mse = float(((decoded - image) ** 2).mean())
                totals[name][stage] += (bits / (image.shape[2] * image.shape[3]), 10 * math.log10(1 / mse))
    results = {}
    for name, total in totals.items():
        mean = total / len(kodak)
        k = quantizers[name].stage(0).codebook.shape[0]
        results[name] = {"codebook_size": k, "bpp": mean[:, 0].tolist(), "psnr": mean[:, 1].tolist()}
    return results


def random_prior(k: int, stages: int) -> ContextPrior:
    """An untrained context prior of the shipped prior's architecture for `stages` of `k`."""
    schedule = ("pyramid", "pyramid", *("all",) * (stages - 2))
    return ContextPrior(PriorConfig(stages=stages, codebook_size=k, width=32, blocks=1, schedule=schedule)).eval()


def prior_decode_times(cases: dict[str, tuple[int, int]], repeats: int) -> dict[str, float]:
    """Median seconds to decode one Kodak-sized grid per (K, stages) case, and for the shipped
    prior the nearest-codeword indices the shipped model gives kodim23."""
    rng = np.random.default_rng(0)
    shipped = zoo.load()
    assert shipped.context_prior is not None
    with torch.no_grad():
        real = shipped.codec.encode_indices(image_tensor(ROOT / "tests" / "data" / "kodim23.png"))[0].numpy()
    grids = {"shipped prior, K=1024, 8 stages (real indices)": (shipped.context_prior, real)}
    for name, (k, stages) in cases.items():
        grids[name] = (random_prior(k, stages), rng.integers(k, size=(stages, *GRID)))
    works = []
    for prior, tokens in grids.values():
        payloads = encode_grid(prior, tokens)
        k, (h, w) = prior.config.codebook_size, tokens.shape[1:]
        works.append(lambda prior=prior, payloads=payloads, k=k, h=h, w=w: decode_grid(prior, payloads, h, w, k))
    with torch.no_grad():
        seconds = [statistics.median(spent) for spent in timed_rounds(works, repeats)]
    return dict(zip(grids, seconds, strict=True))


def raw_stages(k: int) -> int:
    """Stages of K codewords that carry about `RAW_BITS` bits per index position."""
    return round(RAW_BITS / math.log2(k))


def bd_rates(curves: dict, anchor: str) -> dict[str, float | None]:
    """BD-rate (PSNR) of every curve against `anchor`'s, each over its first `raw_stages`
    points (past them the curves flatten at what the decoder can give)."""

    def points(curve: dict) -> tuple[list[float], list[float]]:
        n = raw_stages(curve["codebook_size"])
        return curve["bpp"][:n], curve["psnr"][:n]

    return {name: bd_rate(*points(curves[anchor]), *points(curve)) for name, curve in curves.items()}


def stages_to_reach(curve: dict, psnr: float) -> int | None:
    """The fewest stages at which `curve` reaches `psnr`, None if it never does."""
    return next((stage + 1 for stage, value in enumerate(curve["psnr"]) if value >= psnr), None)


def plot(report: dict, path: Path) -> None:
    figure, (rd_axis, time_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in report["rate_distortion"].items():
        style = "k--" if "shipped" in name else "o-"
        rd_axis.plot(curve["bpp"], curve["psnr"], style, ms=3, label=name)
    rd_axis.set_xlabel("bpp (static prior: each stage's training frequencies)")
    rd_axis.set_ylabel("PSNR (dB), Kodak, shipped fidelity decoder")
    rd_axis.set_title("Residual codebooks of K codewords, stage after stage")
    rd_axis.grid(alpha=0.3)
    rd_axis.legend(fontsize=8)
    names = list(report["prior_decode_s"])
    time_axis.barh(names[::-1], [report["prior_decode_s"][n] for n in names[::-1]], color="tab:blue")
    time_axis.set_xlabel("seconds to decode a 64×96 index grid (prior and coder only)", fontsize=9)
    time_axis.set_title("Context prior decode time", fontsize=10)
    time_axis.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train", type=Path, help="training images (their centre crops fit the codebooks)")
    parser.add_argument("kodak", type=Path, help="evaluation images")
    parser.add_argument("--train-images", type=int, default=200, help="evenly spaced training images to use")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = zoo.load().codec
    train = list_images(args.train)
    train = [train[i] for i in np.linspace(0, len(train) - 1, args.train_images).round().astype(int)]
    curves = rate_distortion(codec, train, list_images(args.kodak))
    reference = curves["k-means K=1024"]
    top_psnr = reference["psnr"][raw_stages(1024) - 1]
    cases = {}
    for name, curve in curves.items():
        if name.startswith("k-means"):
            stages = stages_to_reach(curve, top_psnr) or len(curve["psnr"])
            cases[f"K={curve['codebook_size']}, {stages} stages (K=1024's PSNR at 8)"] = (curve["codebook_size"], stages)
    cases["K=1024, 4 stages"] = (1024, 4)
    report = {
        "train_images": len(train),
        "crop": CROP,
        "threads": args.threads,
        "repeats": args.repeats,
        "rate_distortion": curves,
        "bd_rate_vs_kmeans_1024": bd_rates(curves, "k-means K=1024"),
        "bd_rate_vs_shipped": bd_rates(curves, "shipped K=1024 (trained)"),
        "prior_decode_s": prior_decode_times(cases, args.repeats),
    }
    for name, curve in curves.items():
        points = ", ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(curve["bpp"], curve["psnr"], strict=True))
        print(f"{name}: bpp/PSNR {points}")
    for name, value in report["bd_rate_vs_kmeans_1024"].items():
        print(f"{name}: BD-rate vs k-means K=1024 {value}, vs shipped {report['bd_rate_vs_shipped'][name]}")
    for name, seconds in report["prior_decode_s"].items():
        print(f"{name}: {seconds:.3f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "codebook_size.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "codebook_size.png")
    print(f"wrote {args.out / 'codebook_size.json'} and codebook_size.png")


if __name__ == "__main__":
    main()
