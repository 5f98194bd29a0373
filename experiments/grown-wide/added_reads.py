"""How much a grown model reads the channels its growth added: for every convolution with
more inputs than in the model it grew from, the rms of the weights on the added inputs
against the rms of those on the trained ones (growth starts them at zero).

    python experiments/grown-wide/added_reads.py vqc-f8-s8 "lr 1e-4=runs/ww/lr1e-4/weights.safetensors" ... \
        --out experiments/grown-wide/results/added_reads.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from vqcodec.model import VQCodec
from vqcodec.train.warm_start import load_vqvae
from vqcodec.zoo import load_codec_file


def trained_inputs(source: VQCodec) -> dict[str, int]:
    """Input channels of each convolution of `source` that growth carries over (the realism
    decoder is left behind), by parameter name."""
    return {
        name: value.shape[1]
        for name, value in source.state_dict().items()
        if value.ndim == 4 and not name.startswith("decoders.realism.")
    }


def rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.pow(2).mean().sqrt()


def read_ratios(source_inputs: dict[str, int], weights: Path) -> dict[str, float]:
    state = load_codec_file(weights).state_dict()
    ratios = {}
    for name, trained in source_inputs.items():
        weight = state[name]
        if weight.shape[1] > trained:
            ratios[name] = float(rms(weight[:, trained:]) / rms(weight[:, :trained]))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="the model the runs grew from (as init_from)")
    parser.add_argument("runs", nargs="+", metavar="NAME=WEIGHTS")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    source_inputs = trained_inputs(load_vqvae(args.source))
    report = {}
    for name, path in (item.rsplit("=", 1) for item in args.runs):
        ratios = read_ratios(source_inputs, Path(path))
        report[name] = {"median": statistics.median(ratios.values()), "max": max(ratios.values()), "per_tensor": ratios}
        print(
            f"{name}: added-input rms / trained-input rms, median {report[name]['median']:.3f}, max {report[name]['max']:.3f} "
            f"over {len(ratios)} convolutions"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
