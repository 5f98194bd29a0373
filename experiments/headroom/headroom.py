"""How far can the shipped autoencoder go past 4 stages without retraining?

Kodak PSNR of the fidelity decoder on (a) 1..4 stages of nearest codewords, (b) 4 more
stages whose codebooks are k-means of the training images' residuals after stage 4 (encoder
and decoder frozen), and (c) the unquantized latent, the ceiling any number of stages
approaches. Bits are the raw index cost (10 bits per index), no entropy coding.

    python experiments/headroom/headroom.py ../shared/data/train ../shared/data/kodak \
        --out experiments/headroom/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqcodec import zoo
from vqcodec.model.quantizer import _kmeans


def load(path: Path, crop: int | None = None) -> torch.Tensor:
    """`[1,3,H,W]` in [0,1]: a centre crop, or the image cut to multiples of 8."""
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    h, w = image.shape[:2]
    if crop:
        top, left = (h - crop) // 2, (w - crop) // 2
        image = image[top : top + crop, left : left + crop]
    else:
        image = image[: h - h % 8, : w - w % 8]
    return torch.from_numpy(image.copy()).permute(2, 0, 1).unsqueeze(0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float(torch.mean((a - b) ** 2)))


def residual_after(latent: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
    """`[1,D,h,w]` latent → `[h*w, D]` residual left after nearest-codeword search by `stages`."""
    flat = latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1])
    for codebook in stages:
        flat = flat - codebook[torch.cdist(flat, codebook).argmin(1)]
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("kodak_dir", type=Path)
    parser.add_argument("--train-images", type=int, default=300)
    parser.add_argument("--extra-stages", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = zoo.load().codec
    codebooks = [c.clone() for c in model.quantizer.codebooks()]
    train_files = sorted(p for p in args.train_dir.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    random.Random(0).shuffle(train_files)
    with torch.no_grad():
        latents = [model.encoder(load(p, 128)) for p in train_files[: args.train_images]]
        generator = torch.Generator().manual_seed(0)
        for _ in range(args.extra_stages):
            residuals = torch.cat([residual_after(z, codebooks) for z in latents])
            codebooks.append(_kmeans(residuals, model.config.codebook_size, generator))
        rows: dict[str, list[float]] = {}
        for path in sorted(args.kodak_dir.glob("*.png")):
            image = load(path)
            latent = model.encoder(image)
            flat = latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1])
            quantized = torch.zeros_like(flat)
            for s, codebook in enumerate(codebooks, start=1):
                codeword = codebook[torch.cdist(flat - quantized, codebook).argmin(1)]
                quantized = quantized + codeword
                decoded = model.decoders["fidelity"](quantized.view(latent.shape[0], *latent.shape[2:], -1).permute(0, 3, 1, 2))
                rows.setdefault(f"stages {s}", []).append(psnr(decoded.clamp(0, 1), image))
            rows.setdefault("unquantized", []).append(psnr(model.decoders["fidelity"](latent).clamp(0, 1), image))
            print(path.name, {k: round(v[-1], 2) for k, v in rows.items()}, flush=True)
    bits_per_index = math.log2(model.config.codebook_size) / model.config.stride**2
    result = {
        name: {
            "psnr_db": float(np.mean(values)),
            "raw_bpp": int(name.split()[1]) * bits_per_index if name.startswith("stages") else None,
        }
        for name, values in rows.items()
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
