"""Peak memory of one window of each step that runs a network over a large image, for the
shipped architecture and the GPU recipe's (96/192 widths, blocks (2,3; 4,3)), each at its
own tiling margin (`tiling.margin_for`):

    python experiments/decoder-cost/window_memory.py --out experiments/decoder-cost/results/window_memory.json

- encoder, decoder: one window of the tiled path, a coding tile (`TILE_TOKENS`) and the margin
  on every side, the largest any image needs;
- refine: one window of `--refine` (`vqcodec/refine.py`, `WINDOW_TOKENS` and the margin),
  one Adam step with the straight-through gradient through the decoder.

Random weights (memory does not depend on the values). Each figure is the growth of the
process's peak RSS during the second call of the step (the first allocates what every
call reuses), after handing freed heap pages back (`benchmarks/kernel.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from vqcodec import tiling
from vqcodec.model import CodecConfig, VQCodec
from vqcodec.refine import WINDOW_TOKENS, _best_centre

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from kernel import peak_rss_growth  # noqa: E402

ARCHITECTURES = {
    "shipped 64/128 (1,2; 3,2), 8 x K=1024": CodecConfig(stages=8),
    "GPU recipe 96/192 (2,3; 4,3), 10 x K=512": CodecConfig(
        width_fine=96, width_coarse=192, encoder_blocks=(2, 3), decoder_blocks=(4, 3), codebook_size=512, stages=10
    ),
}


def second_call_growth_mb(work: Callable[[], object]) -> float:
    work()
    growth = peak_rss_growth(work)
    return float("nan") if growth is None else round(growth / 2**20, 1)


def window_memory(config: CodecConfig) -> dict:
    codec = VQCodec(config).eval()
    margin, f = tiling.margin_for(config), config.stride
    side = tiling.TILE_TOKENS + 2 * margin
    pixels, latent = torch.rand(1, 3, side * f, side * f), torch.randn(1, config.latent_dim, side, side)
    span_side = WINDOW_TOKENS + 2 * margin
    span, target = torch.randn(config.latent_dim, span_side, span_side), torch.rand(1, 3, span_side * f, span_side * f)
    inner = (slice(None), slice(margin, margin + WINDOW_TOKENS), slice(margin, margin + WINDOW_TOKENS))
    with torch.no_grad():
        encoder = second_call_growth_mb(lambda: codec.encoder(pixels))
        decoder = second_call_growth_mb(lambda: codec.decoders["fidelity"](latent))
    with torch.inference_mode(False), torch.enable_grad():
        refine = second_call_growth_mb(lambda: _best_centre(codec, span, inner, target, config.stages, 1))
    return {
        "margin_tokens": margin,
        "window_tokens": side,
        "refine_window_tokens": span_side,
        "peak_growth_mb": {"encoder": encoder, "decoder": decoder, "refine": refine},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    report = {"threads": args.threads, "architectures": {}}
    for name, config in ARCHITECTURES.items():
        report["architectures"][name] = window_memory(config)
        print(name, json.dumps(report["architectures"][name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
