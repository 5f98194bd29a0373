"""BD-rate (PSNR) of one `benchmarks/rdo.py` run against another on the same images: by
default the lean prior against the full one, on Kodak with the model's λ profile (the encoder
searches against, and codes with, each prior):

    python benchmarks/rdo.py ../shared/data/kodak --profiles model --prior FULL_PRIOR --out experiments/lean-prior/kodak-full
    python benchmarks/rdo.py ../shared/data/kodak --profiles model --out experiments/lean-prior/kodak-lean
    python experiments/lean-prior/compare.py

`--base`, `--candidate` (rdo.py output folders), `--profile` and `--out` compare other runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))
from rd_bd import bd_rate


def profile_of(folder: Path, name: str) -> dict:
    report = json.loads((folder / "rdo.json").read_text())
    return next(profile for profile in report["profiles"] if profile["name"] == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, default=HERE / "kodak-full")
    parser.add_argument("--candidate", type=Path, default=HERE / "kodak-lean")
    parser.add_argument("--profile", default="model", help="the rdo.py profile to compare, in both runs")
    parser.add_argument("--out", type=Path, default=HERE / "compare.json")
    args = parser.parse_args()
    base, candidate = profile_of(args.base, args.profile), profile_of(args.candidate, args.profile)
    result = {
        "bpp_base": base["context"],
        "bpp_candidate": candidate["context"],
        "psnr_base": base["psnr"],
        "psnr_candidate": candidate["psnr"],
        "bits_growth_at_stages": [b / a - 1 for a, b in zip(base["context"], candidate["context"])],
        "bd_rate_candidate_vs_base_percent": bd_rate(base["context"], base["psnr"], candidate["context"], candidate["psnr"]),
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
