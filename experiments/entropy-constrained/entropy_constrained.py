"""What rate–distortion-optimised quantization would buy the shipped model, before building it.

The codec picks each stage's nearest codeword. An entropy-constrained encoder would pick
argmin ‖r − c‖² + λ_s · bits_s(c) instead, trading a little latent error for cheaper
indices (the decoder stays as it is). This measures that trade on real images:

- bits_s(c) is the order-0 code length of stage s, fitted on training images and refitted
  after each re-encoding with the same λ (a few Lloyd-style rounds, as in ECVQ);
- each evaluation image is encoded with the λ profile, decoded by the fidelity decoder at
  every stage count, and scored by PSNR against the order-0 code length in bpp;
- the λ = 0 profile is the shipped encoder under the same refitted order-0 prior, so every
  profile is compared under one rate model (the context prior, trained on plain indices,
  is left out: it would favour the plain encoder);
- BD-rate is against λ = 0 (benchmarks/rd_bd.py), over all stage counts.

    python experiments/entropy-constrained/entropy_constrained.py ../shared/data/kodak --train ../shared/data/train \\
        --out experiments/entropy-constrained/results
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from vqcodec import zoo
from vqcodec.imaging import prepare_image, to_padded_tensor
from vqcodec.train.data import evenly_spaced, list_images

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the RD helpers
from plotting import save_figure
from rd_bd import bd_quality, bd_rate

DEFAULT_PROFILES = (
    "0,0,0,0",
    "0,0.0003,0.0003,0.0003",
    "0,0.001,0.001,0.001",
    "0,0.0005,0.001,0.002",
    "0,0,0,0.002",
    "0,0,0,0.01",
)
SEARCH_ROWS = 8192  # positions per distance block: [rows, K] float32 stays small


def latents(codec, files: list[Path]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(padded image `[1,3,H,W]`, latent `[h*w, D]`) per file."""
    out = []
    for path in tqdm(files, desc="encode", leave=False):
        image = to_padded_tensor(prepare_image(path).rgb, codec.config.stride)
        with torch.no_grad():
            latent = codec.encoder(image)
        out.append((image, latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1])))
    return out


def quantize(
    codebooks: list[torch.Tensor], vectors: torch.Tensor, code_bits: list[torch.Tensor], weights: list[float]
) -> torch.Tensor:
    """Residual quantization `[N, D]` → indices `[S, N]`, stage s minimising
    ‖r − c‖² + weights[s] · code_bits[s][c]."""
    residual, indices = vectors.clone(), []
    for book, bits, weight in zip(codebooks, code_bits, weights):
        chosen = []
        for block in residual.split(SEARCH_ROWS):
            cost = torch.cdist(block, book).square_()
            if weight > 0:
                cost += weight * bits
            chosen.append(cost.argmin(dim=1))
        stage_indices = torch.cat(chosen)
        residual -= book[stage_indices]
        indices.append(stage_indices)
    return torch.stack(indices)


def fit_code_bits(all_indices: list[torch.Tensor], codebook_size: int) -> list[torch.Tensor]:
    """Order-0 code length in bits per codeword and stage (counts + 1/2, as a KT estimate)."""
    stacked = torch.cat(all_indices, dim=1)  # [S, N]
    bits = []
    for stage_indices in stacked:
        counts = torch.bincount(stage_indices, minlength=codebook_size).double() + 0.5
        bits.append((-(counts / counts.sum()).log2()).float())
    return bits


def evaluate_profile(codec, weights: list[float], train: list, test: list, rounds: int) -> dict:
    codebooks = codec.quantizer.codebooks()
    k, stages = codec.config.codebook_size, codec.config.stages
    flat_bits = [torch.zeros(k)] * stages
    code_bits = fit_code_bits([quantize(codebooks, v, flat_bits, [0.0] * stages) for _, v in train], k)
    for _ in range(rounds if any(weights) else 0):
        code_bits = fit_code_bits([quantize(codebooks, v, code_bits, weights) for _, v in train], k)
    bpp, psnr = [[] for _ in range(stages)], [[] for _ in range(stages)]
    for image, vectors in test:
        h, w = image.shape[2] // codec.config.stride, image.shape[3] // codec.config.stride
        indices = quantize(codebooks, vectors, code_bits, weights)
        quantized, bits = torch.zeros_like(vectors), 0.0
        for s in range(stages):
            quantized += codebooks[s][indices[s]]
            bits += float(code_bits[s][indices[s]].sum())
            with torch.no_grad():
                decoded = codec.decoders["fidelity"](quantized.view(1, h, w, -1).permute(0, 3, 1, 2)).clamp(0, 1)
            bpp[s].append(bits / (image.shape[2] * image.shape[3]))
            psnr[s].append(-10 * math.log10(F.mse_loss(decoded, image).item()))
    return {"weights": weights, "bpp": [sum(v) / len(v) for v in bpp], "psnr": [sum(v) / len(v) for v in psnr]}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in results:
        axis.plot(row["bpp"], row["psnr"], marker="o", label="λ = " + ", ".join(f"{w:g}" for w in row["weights"]))
    axis.set_xlabel("bits per pixel (order-0 code length)")
    axis.set_ylabel("PSNR (dB)")
    axis.set_title("entropy-constrained residual quantization, 1–4 stages")
    save_figure(figure, (axis,), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="evaluation images (e.g. Kodak)")
    parser.add_argument("--train", type=Path, required=True, help="training images the code lengths are fitted on")
    parser.add_argument("--train-images", type=int, default=200, help="evenly spaced training images used")
    parser.add_argument("--profiles", nargs="+", default=list(DEFAULT_PROFILES), help="λ per stage, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="re-encode / refit rounds per profile")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("experiments/entropy-constrained/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    loaded = zoo.load_model(args.model)
    codec = loaded.codec.eval()
    train_files = list_images(args.train)
    train_files = evenly_spaced(train_files, args.train_images)
    train, test = latents(codec, train_files), latents(codec, list_images(args.images))
    results = []
    for profile in tqdm(args.profiles, desc="profiles"):
        weights = [float(value) for value in profile.split(",")]
        if len(weights) != codec.config.stages or any(w < 0 for w in weights):
            parser.error(f"profile {profile!r}: need {codec.config.stages} non-negative weights")
        results.append(evaluate_profile(codec, weights, train, test, args.rounds))
    anchor = results[0]
    for row in results:
        row["bd_rate_vs_first"] = bd_rate(anchor["bpp"], anchor["psnr"], row["bpp"], row["psnr"])
        row["bd_psnr_vs_first"] = bd_quality(anchor["bpp"], anchor["psnr"], row["bpp"], row["psnr"])
        print(
            " ".join(f"{w:g}" for w in row["weights"]),
            "bpp",
            [round(b, 4) for b in row["bpp"]],
            "PSNR",
            [round(p, 3) for p in row["psnr"]],
            "BD-rate",
            row["bd_rate_vs_first"],
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": loaded.name,
        "weights_sha256": loaded.weights_hash.hex(),
        "images": args.images.name,
        "evaluation_images": len(test),
        "train_images": len(train),
        "rounds": args.rounds,
        "seconds": round(time.time() - started, 1),
        "profiles": results,
    }
    (args.out / "entropy_constrained.json").write_text(json.dumps(report, indent=1))
    plot(results, args.out / "entropy_constrained.png")


if __name__ == "__main__":
    main()
