"""Write a copy of codec weights whose floating-point tensors are stored as float16, e.g.

    python experiments/half-weights/make_half_weights.py runs/vqgan-grown2/weights.safetensors \\
        vqcodec/weights/vqc-f8-s8.safetensors

Loading upcasts them to the model's float32 (`load_state_dict` copies into its parameters),
so the networks still compute in float32 and the file is half the size. Integer tensors (the
static prior's frequencies, the codebooks' flags) are copied as they are: they must stay
exact. What the rounding costs is measured in this folder's README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors import safe_open

from vqcodec.files import write_atomic
from vqcodec.reproducible import safetensors_bytes
from vqcodec.zoo import file_sha256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    with safe_open(str(args.source), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    largest = max(float(t.abs().max()) for t in tensors.values() if t.dtype == torch.float32)
    if largest > torch.finfo(torch.float16).max:
        raise SystemExit(f"{args.source} holds a value of {largest:g}, past float16's range")
    half = {name: t.half() if t.dtype == torch.float32 else t for name, t in tensors.items()}
    write_atomic(args.target, safetensors_bytes(half, metadata))
    print(f"{args.target}: {args.target.stat().st_size} bytes, sha256 {file_sha256(args.target)}")


if __name__ == "__main__":
    main()
