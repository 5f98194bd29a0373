"""Does refining the latent against the rate–distortion search beat the codec's `--refine`?

`--refine` (`vqcodec.refine`) takes Adam steps on the latent against the MSE of the image
decoded from its *nearest* codewords; the search (`quantize_for_rate`, the default encode)
then picks cheaper codewords, and undoes part of what the steps bought. Here each step's
forward pass decodes the indices the *search* picks for the current latent instead
(straight-through gradient, as `--refine`), and the iterate whose searched indices decode
closest to the image is kept. Three encodes per image and stage count, all coded with the
shipped context prior at the model's default λ:

- none: the encoder's latent, searched (the default encode);
- nearest: `--refine STEPS` (refine against nearest codewords, then search);
- search: STEPS steps against the search, its kept indices coded.

bpp counts the stage payloads (the header is the same for all three), PSNR the decoded
image. Kodak images fit one refinement window, so `--refine` sees the whole image, as here.

    python experiments/latent-refinement/against_search.py ../shared/data/kodak --every 2 \
        --stages 2 4 6 8 --steps 10 --out experiments/latent-refinement/results-against-search
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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from plotting import save_figure  # noqa: E402
from rd_bd import bd_quality, bd_rate  # noqa: E402
from vqcodec import coding, zoo  # noqa: E402
from vqcodec.devices import serial_on_cpu  # noqa: E402
from vqcodec.entropy.free_tail import limit_free_tails  # noqa: E402
from vqcodec.entropy.rdo import quantize_for_rate  # noqa: E402
from vqcodec.evaluate import image_files  # noqa: E402
from vqcodec.imaging import prepare_image, to_padded_tensor  # noqa: E402
from vqcodec.refine import LEARNING_RATE  # noqa: E402

VARIANTS = ("none", "nearest", "search")


def refined_against_search(codec, rgb: np.ndarray, stages: int, prior, lambdas: list[float], steps: int) -> np.ndarray:
    """Indices `[stages, h, w]` after `steps` Adam steps on the latent against the MSE of the
    image decoded from the search's indices; those of the best iterate, free tails limited."""
    height, width = rgb.shape[:2]
    target = to_padded_tensor(rgb, codec.config.stride)[:, :, :height, :width]
    books = codec.quantizer.codebooks(stages)
    decoder = codec.decoders["fidelity"]
    latent = coding.latent_of(codec, rgb).requires_grad_(True)  # [D, h, w]
    optimizer = torch.optim.Adam([latent], lr=LEARNING_RATE)
    best, best_latent, best_error = None, None, math.inf
    for step in range(steps + 1):
        with torch.no_grad(), serial_on_cpu(coding.CPU):
            indices = quantize_for_rate(latent.detach(), books, prior, lambdas)
            chosen = codec.quantizer.decode(torch.from_numpy(indices)[None])[0]
        quantized = latent + (chosen - latent).detach()
        error = F.mse_loss(decoder(quantized[None])[:, :, :height, :width], target)
        if (value := error.item()) < best_error:
            best, best_latent, best_error = indices, latent.detach().clone(), value
        if step < steps:
            (latent.grad,) = torch.autograd.grad(error, latent)
            optimizer.step()
    return limit_free_tails(best, best_latent, books, prior)


def measure(codec, prior, rgb: np.ndarray, indices: np.ndarray) -> tuple[float, float]:
    """(bpp of the stage payloads, PSNR dB of the decoded image)."""
    payload_bits = 8 * sum(len(payload) for payload in coding.encode_stages(prior, indices))
    decoded = coding.reconstruct(codec, indices, rgb.shape[0], rgb.shape[1]).astype(np.float64)
    mse = float(np.mean((decoded - rgb) ** 2))
    return payload_bits / (rgb.shape[0] * rgb.shape[1]), 10 * math.log10(255.0**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--every", type=int, default=1, help="every N-th image only")
    parser.add_argument("--stages", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    loaded = zoo.load_model()
    codec, prior = loaded.codec, loaded.context_prior
    files = image_files([args.dataset])[:: args.every]
    rows = []
    for file in files:
        rgb = prepare_image(file).rgb
        for stages in args.stages:
            lambdas = list(loaded.rdo_lambdas[:stages])
            row = {"image": file.name, "stages": stages}
            for variant in VARIANTS:
                started = time.perf_counter()
                if variant == "search":
                    with torch.inference_mode(False), torch.enable_grad():
                        indices = refined_against_search(codec, rgb, stages, prior, lambdas, args.steps)
                else:
                    steps = args.steps if variant == "nearest" else 0
                    indices = coding.quantize(codec, rgb, stages, prior, lambdas, refine_steps=steps)
                seconds = time.perf_counter() - started
                bpp, psnr = measure(codec, prior, rgb, indices)
                row[variant] = {"bpp": bpp, "psnr": psnr, "seconds": round(seconds, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    curves = {
        variant: {
            key: [float(np.mean([row[variant][key] for row in rows if row["stages"] == s])) for s in args.stages]
            for key in ("bpp", "psnr", "seconds")
        }
        for variant in VARIANTS
    }
    anchor = curves["none"]
    summary = {
        variant: {
            "bd_rate_vs_none_percent": bd_rate(anchor["bpp"], anchor["psnr"], curve["bpp"], curve["psnr"]),
            "bd_psnr_vs_none_db": bd_quality(anchor["bpp"], anchor["psnr"], curve["bpp"], curve["psnr"]),
        }
        for variant, curve in curves.items()
        if variant != "none"
    }
    report = {
        "model": loaded.name,
        "images": [file.name for file in files],
        "stages": args.stages,
        "steps": args.steps,
        "curves": curves,
        "summary": summary,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "against_search.json").write_text(json.dumps(report, indent=1))
    plot(report, args.out / "against_search.png")
    print(json.dumps(summary, indent=1))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    labels = {"none": "no refinement", "nearest": "--refine (nearest codewords)", "search": "against the search"}
    for variant, curve in report["curves"].items():
        axis.plot(curve["bpp"], curve["psnr"], "o-", label=labels[variant])
    axis.set_xlabel("bpp (stage payloads)")
    axis.set_ylabel("PSNR (dB)")
    axis.set_title(f"{report['model']}, {report['steps']} steps, {len(report['images'])} Kodak images")
    save_figure(figure, [axis], path)


if __name__ == "__main__":
    main()
