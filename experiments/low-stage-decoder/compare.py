"""Held-out PSNR and MS-SSIM at every stage count after each fine-tuning leg, against the
shipped model's (the last validation of its second leg), from the committed logs:

    python experiments/low-stage-decoder/compare.py
"""

from __future__ import annotations

import json
from pathlib import Path

from vqcodec.train.logger import read_metrics

HERE = Path(__file__).parent
SHIPPED = HERE.parent / "encoder-depth" / "results" / "same"
LEGS = {"mse": HERE / "results" / "mse", "ms-ssim 0.01": HERE / "results" / "msssim"}
STAGES = 8


def last_validation(run_dir: Path) -> dict:
    row = [row for row in read_metrics(run_dir) if "val/psnr_stages1" in row][-1]
    return {
        "step": row["step"],
        "psnr": [row[f"val/psnr_stages{n}"] for n in range(1, STAGES + 1)],
        "ms_ssim": [row[f"val/ms_ssim_stages{n}"] for n in range(1, STAGES + 1)],
    }


def main() -> None:
    shipped = last_validation(SHIPPED)
    result: dict = {"shipped": shipped}
    for name, run_dir in LEGS.items():
        leg = last_validation(run_dir)
        leg["psnr_gain"] = [a - b for a, b in zip(leg["psnr"], shipped["psnr"], strict=True)]
        leg["ms_ssim_gain"] = [a - b for a, b in zip(leg["ms_ssim"], shipped["ms_ssim"], strict=True)]
        result[name] = leg
        print(f"{name:>13} step {leg['step']}: dB " + " ".join(f"{g:+.3f}" for g in leg["psnr_gain"]))
        print(" " * 14 + "MS-SSIM " + " ".join(f"{g:+.4f}" for g in leg["ms_ssim_gain"]))
    (HERE / "results" / "compare.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
