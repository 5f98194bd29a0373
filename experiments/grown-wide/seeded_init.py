"""The recipe's wide model grown from a trained one as `init_from` does it, but with the
weights that read the added channels drawn small and random instead of zero: does the width
pay sooner when the added channels are read from the first step?

    python experiments/grown-wide/seeded_init.py vqc-f8-s8 runs/ww/seeded-0.3.safetensors --ratio 0.3
    vqcodec train init_from=runs/ww/seeded-0.3.safetensors ...   # the same architecture: loaded as is

Each such weight is drawn from N(0, (ratio · rms of the trained weights of its tensor)²), so
the grown model no longer computes exactly what its source did; the script prints by how
much (PSNR of the unquantized autoencoder on a few training crops, exact growth and seeded).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqcodec.model.config import CodecConfig
from vqcodec.train.checkpoint import export_weights
from vqcodec.train.data import list_images
from vqcodec.train.warm_start import grown, load_vqvae

sys.path.insert(0, str(Path(__file__).resolve().parent))
from added_reads import rms, trained_inputs  # noqa: E402

WIDE = dict(width_fine=96, width_coarse=192, encoder_blocks=(2, 3), decoder_blocks=(4, 3), codebook_size=512, stages=10)


@torch.no_grad()
def seed_added_reads(model: torch.nn.Module, source_widths: dict[str, int], ratio: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for name, weight in model.state_dict().items():
        trained = source_widths.get(name)
        if trained is None or weight.shape[1] == trained:
            continue
        scale = ratio * rms(weight[:, :trained])
        weight[:, trained:] = torch.randn(weight[:, trained:].shape, generator=generator) * scale


def top_left_crop(path: Path, size: int = 128) -> torch.Tensor:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))[:size, :size]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255


@torch.no_grad()
def autoencoder_psnr(model: torch.nn.Module, crops: torch.Tensor) -> float:
    decoded = model.decoders["fidelity"](model.encoder(crops)).clamp(0, 1)
    return float(-10 * torch.log10((decoded - crops).pow(2).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a model name, weights or latest.pt (as init_from)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/train"))
    args = parser.parse_args()
    source = load_vqvae(args.source)
    target = dataclasses.replace(source.config, **WIDE)
    torch.manual_seed(0)  # the added channels' own weights are a fresh model's random ones
    model = grown(source, target)
    crops = torch.stack([top_left_crop(path) for path in list_images(args.data_dir)[:16]])
    before = autoencoder_psnr(model, crops)
    seed_added_reads(model, trained_inputs(source), args.ratio, seed=0)
    print(
        f"autoencoder PSNR on 16 training crops: exact growth {before:.2f} dB, seeded ({args.ratio}) "
        f"{autoencoder_psnr(model, crops):.2f} dB, source {autoencoder_psnr(source, crops):.2f} dB"
    )
    export_weights(model, args.out, f"{args.source} grown to {CodecConfig.to_json(target)}, added reads seeded at {args.ratio}")


if __name__ == "__main__":
    main()
