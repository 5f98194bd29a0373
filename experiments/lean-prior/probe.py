"""Which compact storage of the context prior keeps Kodak's bits?

Codes fixed indices (those `vqcodec encode` writes with the shipped prior: the rate–distortion
search, λ from the zoo) under the shipped prior and under lean copies of it written by
`save_prior_file` after `compact_neighbour_tables(step)` (shared diagonal tables, entries
rounded to multiples of `step`), and reports each copy's file size and ideal code length
(Σ −log2 p of the coded symbols, from the prior's integer frequencies) against the shipped
prior's, at 1..S stages.

    python experiments/lean-prior/probe.py ../shared/data/kodak --prior OLD_PRIOR \\
        --steps 1,4,5,6 --out experiments/lean-prior/results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vqcodec.entropy.prior_file import compact_neighbour_tables, load_prior_file, save_prior_file
from vqcodec.entropy.rdo import code_lengths, quantize_for_rate
from vqcodec.imaging import prepare_image, to_padded_tensor
from vqcodec.train.data import list_images
from vqcodec.zoo import load_model


def encoded_indices(files: list[Path], codec, prior, lambdas: list[float]) -> list[np.ndarray]:
    codebooks = codec.quantizer.codebooks()
    grids = []
    for path in files:
        pixels = to_padded_tensor(prepare_image(path).rgb, codec.config.stride)
        with torch.inference_mode():
            latent = codec.encoder(pixels)
        grids.append(quantize_for_rate(latent[0], codebooks, prior, lambdas))
    return grids


def stage_bits(prior, grids: list[np.ndarray]) -> np.ndarray:
    """Ideal bits per stage, summed over the grids."""
    total = np.zeros(grids[0].shape[0])
    for indices in grids:
        known = np.zeros(indices.shape, dtype=bool)
        for stage, mask in prior.groups(*indices.shape):
            flat = np.flatnonzero(mask)
            lengths = code_lengths(prior.group_coder(indices, known, stage)(flat))
            symbols = torch.from_numpy(indices[stage].reshape(-1)[flat])[:, None]
            total[stage] += float(lengths.gather(1, symbols).sum())
            known[stage] |= mask
    return total


def lean_copy(prior, step: int, folder: Path):
    """The prior as a lean file would hold it, and that file's size in bytes."""
    compact = copy.deepcopy(prior)
    compact_neighbour_tables(compact, step)
    path = folder / f"step{step}.safetensors.xz"
    save_prior_file(compact, path)
    return load_prior_file(path), path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--prior", type=Path, required=True, help="the prior file to compact (the shipped model's)")
    parser.add_argument("--steps", default="1,4,5,6", help="comma-separated table steps to try")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    parser.add_argument("--out", type=Path, default=Path("experiments/lean-prior/results.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model()
    shipped = load_prior_file(args.prior)
    files = list_images(args.images)[: args.limit or None]
    started = time.time()
    grids = encoded_indices(files, loaded.codec, shipped, list(loaded.rdo_lambdas))
    print(f"indices of {len(files)} images in {time.time() - started:.0f} s", flush=True)
    base = stage_bits(shipped, grids)
    results = {"shipped": {"file_bytes": args.prior.stat().st_size, "bits_per_stage": base.tolist()}}
    with tempfile.TemporaryDirectory() as folder:
        for step in (int(value) for value in args.steps.split(",")):
            prior, size = lean_copy(shipped, step, Path(folder))
            bits = stage_bits(prior, grids)
            growth = np.cumsum(bits) / np.cumsum(base) - 1  # at 1..S stages
            results[f"step {step}"] = {"file_bytes": size, "bits_per_stage": bits.tolist(), "growth_at_stages": growth.tolist()}
            print(
                f"step {step}: {size / 1e6:.2f} MB, bits at 1..{len(growth)} stages "
                + " ".join(f"{100 * g:+.3f}%" for g in growth),
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"images": len(files), "rdo_lambdas": list(loaded.rdo_lambdas), "variants": results}, indent=1)
    )


if __name__ == "__main__":
    main()
