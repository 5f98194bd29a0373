"""Write a model's shipped lean prior from its full one (the variant chosen by probe.py), e.g.

    python experiments/lean-prior/make_lean_prior.py runs/vqc-f8-s8-prior.safetensors \\
        vqcodec/weights/vqc-f8-s8-lean-prior.safetensors.xz --model vqc-f8-s8 --variant 5

That command wrote `vqc-f8-s8`'s shipped prior in prior file format 3; run now, it writes
format 4, which codes the same and takes 13.8 MB instead of 15.4. For an 8-stage model
under the tree's budget: `--variant 5/zero@3/tstep2@2` (README, "Prior file format 4").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from probe import compact_copy

from vqcodec.entropy.prior_file import load_prior_file, save_prior_file
from vqcodec.zoo import file_sha256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--model", required=True, help="the model the prior belongs to, for the file's description")
    parser.add_argument("--variant", default="5", help="how to compact the tables (probe.py's docstring; default: step 5)")
    args = parser.parse_args()
    prior, name = compact_copy(load_prior_file(args.source), args.variant)
    save_prior_file(
        prior,
        args.target,
        description=f"{args.model}'s context prior (sha256 {file_sha256(args.source)}), "
        f"diagonal neighbour tables shared, table entries at {name}",
    )
    print(f"{args.target}: {args.target.stat().st_size} bytes, sha256 {file_sha256(args.target)}")


if __name__ == "__main__":
    main()
