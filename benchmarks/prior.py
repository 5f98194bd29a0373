"""Context prior vs static per-stage prior on real images: coded bits per index for every
stage count (real constriction streams, decoded back and checked) and the time the context
prior adds to decoding.

The static baseline is the order-0 per-stage prior stored in the codec weights (what
`--prior static` codes with). Timing runs with `--threads` torch threads, the least of
`--repeats` decodes per image. Indices are the nearest codewords, or with `--rdo` those the
rate–distortion-optimised encoder picks against the context prior (both priors then code
the same indices).

    python benchmarks/prior.py ../shared/data/kodak --codec CODEC.safetensors \\
        --prior PRIOR.safetensors --out benchmarks/results/prior
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vqcodec import coding
from vqcodec.entropy.prior_file import load_prior_file
from vqcodec.imaging import prepare_image
from vqcodec.train.data import list_images
from vqcodec.zoo import file_sha256, load_codec_file


def timed_decode(prior, payloads: list[bytes], h: int, w: int, k: int, expected: np.ndarray, repeats: int) -> float:
    """Seconds to decode all stages, the least of `repeats` runs (the machine's own cost, less
    what other processes took); raises if a decoded grid differs from `expected`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        decoded = coding.decode_stages(prior, payloads, h, w, k)
        times.append(time.perf_counter() - started)
        if not np.array_equal(decoded, expected):
            raise AssertionError("decoded indices differ from the encoded ones")
    return min(times)


def measure(image_path: Path, codec, priors: dict, repeats: int, rdo_lambdas: list[float] | None) -> dict:
    """Per-stage coded bytes and decode seconds of one image under each prior."""
    # as `vqcodec encode` quantizes for the context prior (no λ: the nearest codewords)
    indices = coding.quantize(codec, prepare_image(image_path).rgb, codec.config.stages, priors["context"], rdo_lambdas)
    _, h, w = indices.shape
    row = {"image": image_path.name, "h": h, "w": w}
    for name, prior in priors.items():
        payloads = coding.encode_stages(prior, indices)
        row[name] = {
            "bytes": [len(p) for p in payloads],
            "decode_s": timed_decode(prior, payloads, h, w, codec.config.codebook_size, indices, repeats),
        }
    return row


def summarize(rows: list[dict], stages: int, k: int) -> dict:
    positions = sum(r["h"] * r["w"] for r in rows)
    out = {"log2_k": math.log2(k), "images": len(rows), "positions_per_stage": positions}
    for name in ("static", "context"):
        stage_bits = [8 * sum(r[name]["bytes"][s] for r in rows) / positions for s in range(stages)]
        out[name] = {
            "bits_per_index_stage": stage_bits,
            "bits_per_index_at_stages": [sum(stage_bits[:n]) / n for n in range(1, stages + 1)],
            "decode_s_mean": float(np.mean([r[name]["decode_s"] for r in rows])),
        }
    out["saving_at_stages"] = [
        1 - c / s for c, s in zip(out["context"]["bits_per_index_at_stages"], out["static"]["bits_per_index_at_stages"])
    ]
    per_image = np.array(
        [[1 - sum(r["context"]["bytes"][:n]) / sum(r["static"]["bytes"][:n]) for n in range(1, stages + 1)] for r in rows]
    )  # [images, stages]
    out["saving_per_image_at_stages"] = {
        "min": per_image.min(axis=0).tolist(),
        "median": np.median(per_image, axis=0).tolist(),
        "max": per_image.max(axis=0).tolist(),
        "images_under_20pct": (per_image < 0.2).sum(axis=0).tolist(),
    }
    out["added_decode_s_mean"] = out["context"]["decode_s_mean"] - out["static"]["decode_s_mean"]
    out["added_decode_s_max"] = max(r["context"]["decode_s"] - r["static"]["decode_s"] for r in rows)
    return out


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = np.arange(1, len(summary["static"]["bits_per_index_stage"]) + 1)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for offset, name in ((-0.2, "static"), (0.2, "context")):
        left.bar(stages + offset, summary[name]["bits_per_index_stage"], width=0.4, label=name)
        right.plot(stages, summary[name]["bits_per_index_at_stages"], marker="o", label=name)
    for axis in (left, right):
        axis.axhline(summary["log2_k"], color="gray", linestyle="--", label="log2 K")
        axis.set_xticks(stages)
        axis.set_ylabel("bits per index")
        axis.legend()
    left.set_xlabel("stage")
    left.set_title("each stage")
    right.set_xlabel("stages coded")
    right.set_title(f"average (context decode +{summary['added_decode_s_mean']:.2f} s)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="folder of evaluation images (e.g. Kodak)")
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prior"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="decode timings per image; the least counts")
    parser.add_argument(
        "--rdo",
        help="λ per stage, comma-separated: quantize as `vqcodec encode` does with the "
        "context prior (vqcodec.entropy.rdo; a zoo model's `rdo_lambdas`); default: nearest codeword",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec, context = load_codec_file(args.codec), load_prior_file(args.prior)
    k, stages = codec.config.codebook_size, min(codec.config.stages, context.config.stages)
    priors = {"static": codec.prior, "context": context}
    files = list_images(args.images)[: args.limit or None]
    rdo_lambdas = None if args.rdo is None else [float(value) for value in args.rdo.split(",")]
    if rdo_lambdas is not None and len(rdo_lambdas) != codec.config.stages:
        parser.error(f"--rdo needs {codec.config.stages} comma-separated values")
    rows = [measure(path, codec, priors, args.repeats, rdo_lambdas) for path in files]
    summary = summarize(rows, stages, k)
    summary.update(
        {
            "threads": args.threads,
            "repeats": args.repeats,
            "machine": platform.machine(),
            "torch": torch.__version__,
            "rdo_lambdas": rdo_lambdas,
            "codec_sha256": file_sha256(args.codec),
            "prior_sha256": file_sha256(args.prior),
            "prior_config": json.loads(context.config.to_json()),
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prior.json").write_text(json.dumps({"summary": summary, "images": rows}, indent=1))
    plot(summary, args.out / "prior.png")
    print(
        json.dumps(
            {key: summary[key] for key in ("saving_at_stages", "saving_per_image_at_stages", "added_decode_s_mean")}, indent=1
        )
    )
    for name in ("static", "context"):
        print(
            name, [round(b, 3) for b in summary[name]["bits_per_index_stage"]], f"decode {summary[name]['decode_s_mean']:.3f} s"
        )


if __name__ == "__main__":
    main()
