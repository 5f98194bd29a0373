"""Share of each residual stage's codewords that a dataset actually uses, and the order-0
entropy of each stage's indices (bits per index, against log2 K).

    python benchmarks/codebook_usage.py ../shared/data/kodak --out benchmarks/results/codebook_usage.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from vqcodec import zoo
from vqcodec.train.data import list_images
from vqcodec.train.export import count_indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=None, help="a zoo name or a codec weights file (default: the shipped model)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    loaded = zoo.load(args.model)
    config = loaded.codec.config
    files = list_images(args.dataset)
    counts = count_indices(loaded.codec, files)  # [S, K]
    stages = []
    for stage in range(config.stages):
        p = counts[stage].double() / counts[stage].sum()
        entropy = float(-(p[p > 0] * p[p > 0].log2()).sum())
        stages.append({"stage": stage + 1, "used_share": float((counts[stage] > 0).double().mean()), "order0_bits": entropy})
        print(f"stage {stage + 1}: {stages[-1]['used_share']:.1%} of codewords used, order-0 entropy {entropy:.3f} bits")
    report = {
        "dataset": args.dataset.name,
        "images": len(files),
        "model": loaded.name,
        "log2_K": math.log2(config.codebook_size),
        "stages": stages,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
