"""How much one context token tells about a codebook index: held-out conditional entropy of
each stage's index given a single other token (a neighbour in the same stage, or the token
of an earlier stage), against the order-0 entropy. It bounds what pair tables can save and
shows where the context prior's bits come from.

Counts come from the first 90% of a `train-prior` token cache, entropies from the rest;
conditionals are smoothed towards the marginal (add-4 counts), so sparse pairs can score
slightly worse than the marginal.

    python experiments/token-context/token_context.py RUN_DIR/tokens.safetensors --out experiments/token-context/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from vqcodec.train.prior_tables import offset_pairs
from vqcodec.train.token_cache import read_token_cache

SMOOTHING = 4.0


def pairs(grids: list[np.ndarray], context_stage: int, stage: int, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """(context token at p+(dy, dx) in `context_stage`, token at p in `stage`) over all grids."""
    found = [offset_pairs(grid[context_stage].astype(np.int64), grid[stage].astype(np.int64), dy, dx) for grid in grids]
    return np.concatenate([context for context, _ in found]), np.concatenate([target for _, target in found])


def entropies(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], k: int) -> tuple[float, float]:
    """(conditional, order-0) bits per index of the test pairs under counts of the train pairs."""
    joint = np.bincount(train[0] * k + train[1], minlength=k * k).reshape(k, k).astype(np.float64)
    marginal = (joint.sum(axis=0) + 1) / (joint.sum() + k)
    context, target = test
    conditional = (joint[context, target] + SMOOTHING * marginal[target]) / (joint[context].sum(axis=1) + SMOOTHING)
    return float(-np.log2(conditional).mean()), float(-np.log2(marginal[target]).mean())


def contexts(stage: int) -> dict[str, tuple[int, int, int]]:
    """name → (context stage, dy, dx)."""
    named = {"left neighbour": (stage, 0, -1), "upper neighbour": (stage, -1, 0), "upper-left neighbour": (stage, -1, -1)}
    if stage > 0:
        named["previous stage, same position"] = (stage - 1, 0, 0)
        named["previous stage, left neighbour"] = (stage - 1, 0, -1)
    if stage > 1:
        named["first stage, same position"] = (0, 0, 0)
    return named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tokens", type=Path, help="train-prior token cache (tokens.safetensors)")
    parser.add_argument("--codebook-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("experiments/token-context/results"))
    args = parser.parse_args()
    metadata, grids = read_token_cache(args.tokens)
    split = int(0.9 * len(grids))
    train, test = grids[:split], grids[split:]
    rows = []
    for stage in range(grids[0].shape[0]):
        for name, (context_stage, dy, dx) in contexts(stage).items():
            conditional, order0 = entropies(
                pairs(train, context_stage, stage, dy, dx), pairs(test, context_stage, stage, dy, dx), args.codebook_size
            )
            rows.append(
                {
                    "stage": stage + 1,
                    "context": name,
                    "conditional_bits": conditional,
                    "order0_bits": order0,
                    "saving": 1 - conditional / order0,
                }
            )
            print(f"stage {stage + 1}, {name}: {conditional:.3f} vs {order0:.3f} bits ({100 * rows[-1]['saving']:+.1f} %)")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "tokens": args.tokens.name,
        "codec_sha256": metadata.get("codec_sha256"),
        "train_grids": split,
        "test_grids": len(test),
        "smoothing": SMOOTHING,
        "rows": rows,
    }
    (args.out / "token_context.json").write_text(json.dumps(report, indent=1))
    plot(rows, args.out / "token_context.png")
    print(f"wrote {args.out / 'token_context.json'} and token_context.png")


def plot(rows: list[dict], path: Path) -> None:
    names = list(dict.fromkeys(row["context"] for row in rows))
    stages = sorted({row["stage"] for row in rows})
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        points = [(row["stage"], 100 * row["saving"]) for row in rows if row["context"] == name]
        axis.bar([s - 0.4 + (i + 0.5) * width for s, _ in points], [v for _, v in points], width, label=name)
    axis.axhline(0, color="grey", lw=0.8)
    axis.set_xticks(stages)
    axis.set_xlabel("stage")
    axis.set_ylabel("% fewer bits than order-0 (held out)")
    axis.set_title("what one context token tells about an index")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
