"""Write a model's shipped lean prior from its full one (table step chosen by probe.py), e.g.

    python experiments/lean-prior/make_lean_prior.py runs/vqc-f8-s8-prior.safetensors \\
        vqcodec/weights/vqc-f8-s8-lean-prior.safetensors.xz --model vqc-f8-s8 --step 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vqcodec.entropy.prior_file import compact_neighbour_tables, load_prior_file, save_prior_file
from vqcodec.zoo import file_sha256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--model", required=True, help="the model the prior belongs to, for the file's description")
    parser.add_argument("--step", type=int, default=5)
    args = parser.parse_args()
    prior = load_prior_file(args.source)
    compact_neighbour_tables(prior, args.step)
    save_prior_file(
        prior,
        args.target,
        description=f"{args.model}'s context prior (sha256 {file_sha256(args.source)}), "
        f"diagonal neighbour tables shared, table entries at step {args.step}",
    )
    print(f"{args.target}: {args.target.stat().st_size} bytes, sha256 {file_sha256(args.target)}")


if __name__ == "__main__":
    main()
