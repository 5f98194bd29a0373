"""BD-rate (PSNR) of the lean prior against the full one, from two `benchmarks/rdo.py` runs on
Kodak with the model's λ profile (the encoder searches against, and codes with, each prior):

    python benchmarks/rdo.py ../shared/data/kodak --profiles model --prior FULL_PRIOR --out experiments/lean-prior/kodak-full
    python benchmarks/rdo.py ../shared/data/kodak --profiles model --out experiments/lean-prior/kodak-lean
    python experiments/lean-prior/compare.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))
from rd_bd import bd_rate


def model_profile(folder: str) -> dict:
    report = json.loads((HERE / folder / "rdo.json").read_text())
    return next(profile for profile in report["profiles"] if profile["name"] == "model")


def main() -> None:
    full, lean = model_profile("kodak-full"), model_profile("kodak-lean")
    result = {
        "bpp_full": full["context"],
        "bpp_lean": lean["context"],
        "psnr_full": full["psnr"],
        "psnr_lean": lean["psnr"],
        "bits_growth_at_stages": [b / a - 1 for a, b in zip(full["context"], lean["context"])],
        "bd_rate_lean_vs_full_percent": bd_rate(full["context"], full["psnr"], lean["context"], lean["psnr"]),
    }
    (HERE / "compare.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
