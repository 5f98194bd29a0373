"""Write an untrained model of a given architecture, codec weights and context prior, for
timing it with the product's own benchmark before any GPU time is spent on training it:

    python experiments/codebook-size/random_model.py runs/timing/k512-s10 ../shared/data/kodak \
        --codebook-size 512 --stages 10 --width-fine 96 --width-coarse 192 \
        --encoder-blocks 2 3 --decoder-blocks 4 3
    VQCODEC_WEIGHTS=DIR python benchmarks/speed.py --models vqc-f8-s4-v3 vqc-f8-s8 \
        runs/timing/k512-s10/codec.safetensors --prior-file runs/timing/k512-s10/prior.safetensors ...

The networks keep their random initialisation (their time does not depend on their values);
each stage's codebook starts, as in training, from k-means of the residuals of a few
images' latents, so the indices are spread over the codebook as a trained model's are. The
prior has the shipped prior's architecture (width 32, 1 block, stages 1–2 in the pyramid
tile, the rest in one group) and its random initial weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vqcodec.entropy.prior_file import save_prior_file
from vqcodec.model import CodecConfig, VQCodec
from vqcodec.train.checkpoint import export_weights
from vqcodec.train.data import list_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codebook_size import initialise_residual, latent_vectors, random_prior  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for codec.safetensors and prior.safetensors")
    parser.add_argument("images", type=Path, help="images whose latents start the codebooks")
    parser.add_argument("--count", type=int, default=4, help="how many of them")
    parser.add_argument("--codebook-size", type=int, default=1024)
    parser.add_argument("--stages", type=int, default=8)
    parser.add_argument("--width-fine", type=int, default=64)
    parser.add_argument("--width-coarse", type=int, default=128)
    parser.add_argument("--encoder-blocks", type=int, nargs=2, default=(1, 2))
    parser.add_argument("--decoder-blocks", type=int, nargs=2, default=(3, 2))
    args = parser.parse_args()
    torch.manual_seed(0)
    config = CodecConfig(
        width_fine=args.width_fine,
        width_coarse=args.width_coarse,
        encoder_blocks=tuple(args.encoder_blocks),
        decoder_blocks=tuple(args.decoder_blocks),
        codebook_size=args.codebook_size,
        stages=args.stages,
    )
    codec = VQCodec(config).eval()
    initialise_residual(codec.quantizer, latent_vectors(codec, list_images(args.images)[: args.count], crop=None))
    prior = random_prior(args.codebook_size, args.stages)
    args.out.mkdir(parents=True, exist_ok=True)
    export_weights(codec, args.out / "codec.safetensors", "untrained, for timing only")
    save_prior_file(prior, args.out / "prior.safetensors", "untrained, for timing only")
    print(f"wrote {args.out / 'codec.safetensors'} and prior.safetensors")


if __name__ == "__main__":
    main()
