"""What rate–distortion-optimised quantization (`vqcodec/entropy/rdo.py`) buys, per λ profile.

Each image is quantized once per profile with `quantize_for_rate` against the model's context
prior (λ = 0 is the plain nearest-codeword encoder), coded with the context prior and with
the static per-stage prior (real streams; bpp counts the stage payloads, not the header),
and decoded by the fidelity decoder at every stage count. Per profile it reports bpp under
both priors, PSNR, the context prior's saving over the static prior on the same indices, and
BD-rate (PSNR) against the first profile coded with the context prior and with the static
prior: the second is what the context prior and its encoder save at equal quality.

Profiles are chosen on training images, never on the evaluation set; the zoo's (profile
"model") is then measured on Kodak:

    python benchmarks/rdo.py ../shared/data/train --limit 48 --profiles 0 0.04 0.05 model 0.12 0.16 \\
        --out benchmarks/results/rdo/train
    python benchmarks/rdo.py ../shared/data/kodak --profiles 0 model 0.04 0.16 --codecs benchmarks/results/kodak \\
        --out benchmarks/results/rdo/kodak

The training run also gives `benchmarks/quality_points.py` what it chooses `-q`'s points from.

A model that is not in the zoo yet: `--weights FILE --prior PRIOR`.

λ is relative (see `quantize_for_rate`), so one profile suits images of any difficulty. What
the lookahead term buys: the same on the training images with `--no-lookahead --profiles 0
0.08 --out benchmarks/results/rdo/train-no-lookahead`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from plotting import draw_compared_curves, save_figure
from rd_bd import bd_rate, bd_rates_against, committed_curves, psnr_ahead
from vqcodec import coding, zoo
from vqcodec.entropy.prior_file import load_prior_file
from vqcodec.entropy.rdo import quantize_for_rate
from vqcodec.imaging import prepare_image, to_padded_tensor
from vqcodec.train.data import evenly_spaced, list_images
from vqcodec.zoo import file_sha256


def parse_profile(text: str, loaded: zoo.LoadedModel) -> list[float]:
    """ "model" (the zoo's λ per stage), one λ for every stage, or one per stage, comma-separated."""
    stages = loaded.codec.config.stages
    if text == "model":
        if not loaded.rdo_lambdas:
            raise ValueError(f"model {loaded.name!r} has no λ profile")
        return list(loaded.rdo_lambdas)
    values = [float(value) for value in text.split(",")]
    values = values * stages if len(values) == 1 else values
    if len(values) != stages or any(not value >= 0 for value in values):
        raise ValueError(f"profile {text!r}: need 1 or {stages} non-negative values")
    return values


def measure_image(
    codec, context_prior, image: torch.Tensor, latent: torch.Tensor, lambdas: list[float], lookahead: bool = True
) -> dict:
    """Payload bits per stage under both priors and PSNR at every stage count, for one image
    quantized against `context_prior`."""
    codebooks = codec.quantizer.codebooks()
    indices = quantize_for_rate(latent, codebooks, context_prior, lambdas, lookahead=lookahead)  # [S, h, w]
    row = {
        name: [8 * len(p) for p in coding.encode_stages(prior, indices)]
        for name, prior in (("context", context_prior), ("static", codec.prior))
    }
    with torch.inference_mode():
        row["psnr"] = [
            -10 * math.log10(F.mse_loss(codec.decode_indices(torch.from_numpy(indices[None, :n])), image).item())
            for n in range(1, len(codebooks) + 1)
        ]
    return row


def latents(codec, files: list[Path]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(padded image `[1,3,H,W]`, latent `[D,h,w]`) per file."""
    out = []
    for path in tqdm(files, desc="encode", leave=False):
        rgb = prepare_image(path).rgb
        out.append((to_padded_tensor(rgb, codec.config.stride), coding.latent_of(codec, rgb)))
    return out


def summarize(rows: list[dict], pixels: int) -> dict:
    """Mean bpp (total bits over total pixels) at each stage count, mean PSNR and the saving."""
    out = {name: (np.cumsum(np.sum([r[name] for r in rows], axis=0)) / pixels).tolist() for name in ("context", "static")}
    out["psnr"] = np.mean([r["psnr"] for r in rows], axis=0).tolist()
    out["saving_at_stages"] = [1 - c / s for c, s in zip(out["context"], out["static"])]
    return out


def plot(results: list[dict], path: Path, compared: dict[str, dict[str, list[float]]]) -> None:
    """RD curves per profile (with `compared`, the RD benchmark's curves thin, cut to this
    range of rates) and the context prior's saving per stage count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(row: dict) -> str:
        return f"λ = {row['name']}" + (f" ({','.join(f'{v:g}' for v in row['lambdas'])})" if row["name"] == "model" else "")

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    anchor = results[0]
    draw_compared_curves(left, compared, 1.2 * max(max(row["static"]) for row in results))
    left.plot(anchor["static"], anchor["psnr"], "k--", marker="x", label=f"{label(anchor)}, static prior")
    for i, row in enumerate(results):
        color = f"C{i}"
        left.plot(row["context"], row["psnr"], color=color, lw=2, marker="o", label=f"{label(row)}, context prior")
        stages = range(1, len(row["psnr"]) + 1)
        right.plot(stages, [100 * s for s in row["saving_at_stages"]], color=color, marker="o", label=label(row))
    right.axhline(20, color="gray", linestyle=":", label="20 %")
    left.set_xlabel("bits per pixel (stage payloads)")
    left.set_ylabel("PSNR (dB), fidelity decoder")
    left.set_title(f"1–{len(anchor['psnr'])} stages")
    right.set_xticks(range(1, len(anchor["psnr"]) + 1))
    right.set_xlabel("stages coded")
    right.set_ylabel("context prior's saving over static (%)")
    right.set_title("same indices, both priors")
    save_figure(figure, (left, right), path, legend_size=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="folder of images")
    parser.add_argument(
        "--profiles",
        nargs="+",
        default=["0", "model"],
        help='λ per stage, comma-separated, one value for all stages, or "model"; the first is the anchor',
    )
    parser.add_argument(
        "--no-lookahead", action="store_true", help="score each index by its own code length only (what the neighbour term buys)"
    )
    parser.add_argument("--limit", type=int, default=0, help="use N evenly spaced images (0: all)")
    parser.add_argument("--model", default=None, help="zoo model (default: the shipped one)")
    parser.add_argument("--weights", type=Path, help="codec weights file instead of a zoo model (needs --prior)")
    parser.add_argument("--prior", type=Path, help="a context prior file to search and code with instead of the model's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--codecs",
        type=Path,
        help="folder of the RD benchmark's curves (CompressAI JSON): BD-rate against each, and dB ahead at the same bpp",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rdo"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    if args.weights and not args.prior:
        parser.error("--weights needs --prior: a weights file has no context prior of its own")
    loaded = zoo.load_model_file(args.weights) if args.weights else zoo.load_model(args.model)
    context_prior = load_prior_file(args.prior) if args.prior else loaded.context_prior
    if context_prior is None:
        parser.error(f"model {loaded.name!r} has no context prior")
    try:
        profiles = [(text, parse_profile(text, loaded)) for text in args.profiles]
    except ValueError as error:
        parser.error(str(error))
    files = list_images(args.images)
    if args.limit:
        files = evenly_spaced(files, args.limit)
    images = latents(loaded.codec, files)
    pixels = sum(image.shape[2] * image.shape[3] for image, _ in images)
    results = []
    for text, lambdas in tqdm(profiles, desc="profiles"):
        rows = [
            measure_image(loaded.codec, context_prior, image, latent, lambdas, not args.no_lookahead)
            for image, latent in tqdm(images, leave=False)
        ]
        results.append({"name": text, "lambdas": lambdas, **summarize(rows, pixels)})
    anchor = results[0]
    others = committed_curves(args.codecs) if args.codecs else {}
    for row in results:
        row["bd_rate_vs_first_context"] = bd_rate(anchor["context"], anchor["psnr"], row["context"], row["psnr"])
        row["bd_rate_vs_first_static"] = bd_rate(anchor["static"], anchor["psnr"], row["context"], row["psnr"])
        row["bd_rate_vs"] = bd_rates_against(others, row["context"], row["psnr"])
        row["psnr_ahead_of"] = {name: psnr_ahead(curve, row["context"], row["psnr"]) for name, curve in others.items()}
        print(
            f"{row['name']:>24}  saving % {[round(100 * s, 1) for s in row['saving_at_stages']]}  "
            f"bpp {[round(b, 4) for b in row['context']]}  PSNR {[round(p, 3) for p in row['psnr']]}  "
            f"BD-rate vs first: context {row['bd_rate_vs_first_context']:+.2f} %, static {row['bd_rate_vs_first_static']:+.2f} %"
            + "".join(f", vs {name} {value:+.1f} %" for name, value in row["bd_rate_vs"].items() if value is not None)
        )
    args.out.mkdir(parents=True, exist_ok=True)
    prior_sha256 = file_sha256(args.prior) if args.prior else loaded.prior_hash.hex()
    report = {
        "model": loaded.name,
        "weights_sha256": loaded.weights_hash.hex(),
        "prior_sha256": prior_sha256,
        "images": args.images.name,
        "image_count": len(images),
        "pixels": pixels,
        "threads": args.threads,
        "lookahead": not args.no_lookahead,
        "seconds": round(time.time() - started, 1),
        "profiles": results,
    }
    (args.out / "rdo.json").write_text(json.dumps(report, indent=1))
    plot(results, args.out / "rdo.png", others)


if __name__ == "__main__":
    main()
