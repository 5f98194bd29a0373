"""Which compact storage of the context prior keeps Kodak's bits?

Codes fixed indices (those `vqcodec encode` writes with the shipped prior: the rate–distortion
search, λ from the zoo) under the shipped prior and under lean copies of it written by
`save_prior_file`, and reports each copy's file size and ideal code length (Σ −log2 p of the
coded symbols, from the prior's integer frequencies) against the shipped prior's, at 1..S
stages. A variant is `STEP` — `compact_neighbour_tables(step)`: shared diagonal tables,
entries rounded to multiples of `STEP` — followed by any number of `/KIND@FIRST`, each of
which treats the tables of stages FIRST..S (counted from 1) further: for the neighbour
tables, `stepN` rounds them to multiples of N, `one` makes one table serve all four offsets
(their average), `zero` drops them; `tstepN` rounds the transition logits that predict those
stages to multiples of N units. It also reports how the file's compressed bytes split
between its tensors, and the bits per index under random masks (`masked_bits`: what
generation and inpainting rely on, where the coding order may not).

    python experiments/lean-prior/probe.py ../shared/data/kodak --prior OLD_PRIOR \\
        --variants 1,4,5,6 --out experiments/lean-prior/results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import lzma
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vqcodec.entropy.prior_file import (
    compact_neighbour_tables,
    integer_state,
    load_prior_file,
    rounded_to_step,
    save_prior_file,
)
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


@torch.no_grad()
def masked_bits(prior, grids: list[np.ndarray], masks_per_stage: int = 4, seed: int = 0) -> np.ndarray:
    """Bits per index of each stage as generation and inpainting meet them: earlier stages
    known, a random share (MaskGIT's cosine schedule) of the stage's own tokens known and the
    rest predicted. The coding order never shows a stage in one group (3+ here) any of its
    own tokens; sampling does, through the neighbour tables. Seeded: every variant sees the
    same masks."""
    rng = np.random.default_rng(seed)
    stages = grids[0].shape[0]
    bits, counts = np.zeros(stages), np.zeros(stages)
    for indices in grids:
        tokens = torch.from_numpy(indices)[None]
        for stage in range(stages):
            for _ in range(masks_per_stage):
                known = np.zeros(indices.shape, dtype=bool)
                known[:stage] = True
                known[stage] = rng.random(indices.shape[1:]) >= math.cos(0.5 * math.pi * rng.random())
                predict = torch.from_numpy(~known[stage])[None]
                nats = prior(tokens, torch.from_numpy(known)[None], torch.tensor([stage]), predict)
                bits[stage] += float(nats.sum()) / math.log(2)
                counts[stage] += int(predict.sum())
    return bits / counts


def compact_copy(prior, variant: str):
    """A copy of `prior` with its tables treated as `variant` says (module docstring), and
    the variant's name in the results."""
    step, *treatments = variant.split("/")
    compact = copy.deepcopy(prior)
    compact_neighbour_tables(compact, int(step))
    names = [f"step {step}"]
    for treatment in treatments:
        kind, _, first = treatment.partition("@")
        tables = compact.neighbour[int(first) - 1 :]  # [stages, offsets, K, K], a view
        with torch.no_grad():
            if kind == "zero":
                tables.zero_()
            elif kind == "one":
                tables.copy_(tables.float().mean(dim=1, keepdim=True).round().expand_as(tables).to(torch.int8))
            elif kind.startswith("step"):
                tables.copy_(rounded_to_step(tables, int(kind.removeprefix("step"))))
            elif kind.startswith("tstep") and int(first) >= 2:  # transition[s - 2] predicts stage s from s - 1
                unit = float(int(kind.removeprefix("tstep"))) * 2.0**-compact.config.logit_bits
                rows = compact.transition[int(first) - 2 :]
                rows.copy_(torch.round(rows / unit) * unit)
            else:
                raise ValueError(f"unknown treatment {treatment!r} in variant {variant!r}")
        names.append(f"stages {first}+ {kind}")
    return compact, ", ".join(names)


def lean_copy(prior, variant: str, folder: Path):
    """The prior as a lean file would hold it, its name and that file's size in bytes."""
    compact, name = compact_copy(prior, variant)
    path = folder / "lean.safetensors.xz"
    save_prior_file(compact, path)
    return load_prior_file(path), name, path.stat().st_size


def compressed_parts(prior) -> dict[str, int]:
    """Bytes each tensor of the prior's file takes on its own after xz (the neighbour tables
    per stage): where a lean file's size goes."""
    state = integer_state(prior)
    neighbour = state.pop("neighbour")
    parts = {f"neighbour stage {s + 1}": neighbour[s] for s in range(prior.config.stages)}
    parts.update(state)
    return {name: len(lzma.compress(tensor.numpy().tobytes(), preset=6)) for name, tensor in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--prior", type=Path, required=True, help="the prior file to compact (the shipped model's)")
    parser.add_argument("--variants", default="1,4,5,6", help="comma-separated variants to try (module docstring)")
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
    results = {
        "shipped": {
            "file_bytes": args.prior.stat().st_size,
            "bits_per_stage": base.tolist(),
            "masked_bits_per_index": masked_bits(shipped, grids).tolist(),
        }
    }
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants.split(","):
            prior, name, size = lean_copy(shipped, variant, Path(folder))
            bits = stage_bits(prior, grids)
            growth = np.cumsum(bits) / np.cumsum(base) - 1  # at 1..S stages
            results[name] = {
                "file_bytes": size,
                "bits_per_stage": bits.tolist(),
                "growth_at_stages": growth.tolist(),
                "masked_bits_per_index": masked_bits(prior, grids).tolist(),
                "compressed_parts": compressed_parts(prior),
            }
            print(
                f"{name}: {size / 1e6:.2f} MB, bits at 1..{len(growth)} stages " + " ".join(f"{100 * g:+.3f}%" for g in growth),
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"images": len(files), "rdo_lambdas": list(loaded.rdo_lambdas), "variants": results}, indent=1)
    )


if __name__ == "__main__":
    main()
