"""Encode/decode time of a 768×512 image per model, stage count and thread count, next to
Pillow's JPEG in the same run (a reference for how loaded the machine is).

    python benchmarks/speed.py [IMAGE] [--repeats 5] [--out benchmarks/results/speed]
    python benchmarks/speed.py --models vqc-f8-s4-v3 runs/next.safetensors --threads 2 --out DIR
    python benchmarks/speed.py --models vqc-f8-s4-v3 runs/next.safetensors --prior-file runs/next-prior.safetensors ...

With several models (zoo names or codec weights files, the first the reference), every row
also gives its time as a multiple of the reference model's at the reference's top stage
count, same thread count: the "top rate costs at most 2× today's" check of a new model.
Every encode and decode of every model (and JPEG's) is timed once per round, round after
round, so a machine whose speed drifts during the run moves them all alike.
A weights file codes with its static prior unless `--prior-file` gives the last model named
a context prior (with it, it codes with the nearest codewords: a prior file carries no tuned
rate–distortion profile, so its encode time leaves out the search).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from PIL import Image

import vqcodec

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "tests" / "data" / "kodim23.png"


def timed_rounds(works: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Seconds of each of `works`, one per round, timed in `repeats` rounds that run every work
    once in turn, after one warm-up run each (model load, allocator, caches). A machine that
    speeds up or slows down during the benchmark then shifts every work alike, so the ratios
    between them hold, where timing one model after the other let the drift between their
    turns move the ratio."""
    for work in works:
        work()
    times: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for work, spent in zip(works, times, strict=True):
            started = time.perf_counter()
            work()
            spent.append(time.perf_counter() - started)
    return times


def jpeg_works(image: Image.Image) -> tuple[Callable[[], object], Callable[[], object]]:
    """Encoding and decoding `image` with Pillow's JPEG: the reference for how loaded the machine is."""

    def encode() -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=75, optimize=True)
        return buffer.getvalue()

    data = encode()
    return encode, lambda: Image.open(io.BytesIO(data)).load()


def measure(image: Image.Image, models: list[tuple[str | None, Path | None]], threads: int, repeats: int) -> list[dict]:
    """One row per (model, stage count) at `threads` torch threads; `models` holds (model,
    prior file) pairs. Every encode and decode of every model is timed in the same rounds."""
    torch.set_num_threads(threads)
    cases = []
    for model, prior_file in models:
        info = vqcodec.model_info(model)
        coding = {"model": model, "prior_file": prior_file}
        for stages in range(1, info["stages"] + 1):
            cases.append((info, stages, coding, vqcodec.compress(image, stages=stages, **coding)))
    works = [
        *jpeg_works(image),
        *(functools.partial(vqcodec.compress, image, stages=stages, **coding) for _, stages, coding, _ in cases),
        *(functools.partial(vqcodec.decompress, data, **coding) for _, _, coding, data in cases),
    ]
    seconds = [statistics.median(spent) for spent in timed_rounds(works, repeats)]
    jpeg_encode, jpeg_decode = seconds[:2]
    encodes, decodes = seconds[2 : 2 + len(cases)], seconds[2 + len(cases) :]
    rows = []
    for (info, stages, _, data), encode, decode in zip(cases, encodes, decodes, strict=True):
        rows.append(
            {
                "model": info["name"],
                "threads": threads,
                "stages": stages,
                "prior": vqcodec.read_header(data).prior,
                "bpp": len(data) * 8 / (image.width * image.height),
                "encode_s": encode,
                "decode_s": decode,
                "encode_vs_jpeg": encode / jpeg_encode,
                "decode_vs_jpeg": decode / jpeg_decode,
                "jpeg_encode_s": jpeg_encode,
                "jpeg_decode_s": jpeg_decode,
            }
        )
        print(f"{info['name']} threads={threads} stages={stages}: encode {encode:.3f}s decode {decode:.3f}s")
    return rows


def add_reference_ratios(rows: list[dict]) -> None:
    """`encode_vs_reference` / `decode_vs_reference` on every row: its time over the first
    model's at that model's top stage count, on the same thread count."""
    reference = rows[0]["model"]
    for threads in {row["threads"] for row in rows}:
        top = max((r for r in rows if r["model"] == reference and r["threads"] == threads), key=lambda r: r["stages"])
        for row in rows:
            if row["threads"] == threads:
                row["encode_vs_reference"] = row["encode_s"] / top["encode_s"]
                row["decode_vs_reference"] = row["decode_s"] / top["decode_s"]


def plot(rows: list[dict], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        for threads in sorted({r["threads"] for r in rows}):
            subset = [r for r in rows if r["threads"] == threads and r["model"] == model]
            label = f"{model}, {threads} thread(s)"
            (line,) = axis.plot([r["stages"] for r in subset], [r["encode_s"] for r in subset], "o-", label=f"encode, {label}")
            axis.plot(
                [r["stages"] for r in subset],
                [r["decode_s"] for r in subset],
                "s--",
                color=line.get_color(),
                label=f"decode, {label}",
            )
    axis.axhline(1.0, color="grey", lw=0.8, ls=":", label="1 s target")
    axis.set_xlabel("stages coded")
    axis.set_ylabel("seconds (median)")
    axis.set_title("vqcodec on a 768×512 image (CPU)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--models",
        nargs="+",
        default=[None],
        help="zoo names or codec weights files, the reference first (default: the shipped model)",
    )
    parser.add_argument("--prior-file", type=Path, help="context prior file of the last model in --models")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed"))
    args = parser.parse_args()
    image = Image.open(args.image).convert("RGB")
    priors = [None] * (len(args.models) - 1) + [args.prior_file]
    models = list(zip(args.models, priors, strict=True))
    rows = [row for threads in args.threads for row in measure(image, models, threads, args.repeats)]
    add_reference_ratios(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "image": args.image.name,
        "size": list(image.size),
        "models": list(dict.fromkeys(row["model"] for row in rows)),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()},
        "repeats": args.repeats,
        "rows": rows,
    }
    (args.out / "speed.json").write_text(json.dumps(report, indent=2))
    plot(rows, args.out / "speed.png")
    print(f"wrote {args.out / 'speed.json'} and speed.png")


if __name__ == "__main__":
    main()
