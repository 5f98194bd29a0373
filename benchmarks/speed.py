"""Encode/decode time of a 768×512 image with the shipped model, per stage count and thread
count, next to Pillow's JPEG in the same run (a reference for how loaded the machine is).

    python benchmarks/speed.py [IMAGE] [--repeats 5] [--out benchmarks/results/speed]
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
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from PIL import Image

import vqcodec

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "tests" / "data" / "kodim23.png"


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up: model load, allocator, caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def jpeg_seconds(image: Image.Image, repeats: int) -> tuple[float, float]:
    def encode() -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=75, optimize=True)
        return buffer.getvalue()

    data = encode()
    return median_seconds(encode, repeats), median_seconds(lambda: Image.open(io.BytesIO(data)).load(), repeats)


def measure(image: Image.Image, threads: int, repeats: int) -> list[dict]:
    torch.set_num_threads(threads)
    jpeg_encode, jpeg_decode = jpeg_seconds(image, repeats)
    rows = []
    for stages in range(1, vqcodec.model_info()["stages"] + 1):
        data = vqcodec.compress(image, stages=stages)
        encode = median_seconds(functools.partial(vqcodec.compress, image, stages=stages), repeats)
        decode = median_seconds(functools.partial(vqcodec.decompress, data), repeats)
        rows.append(
            {
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
        print(f"threads={threads} stages={stages}: encode {encode:.3f}s decode {decode:.3f}s")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    for threads in sorted({r["threads"] for r in rows}):
        subset = [r for r in rows if r["threads"] == threads]
        axis.plot([r["stages"] for r in subset], [r["encode_s"] for r in subset], "o-", label=f"encode, {threads} thread(s)")
        axis.plot([r["stages"] for r in subset], [r["decode_s"] for r in subset], "s--", label=f"decode, {threads} thread(s)")
    axis.axhline(1.0, color="grey", lw=0.8, ls=":", label="1 s target")
    axis.set_xlabel("stages coded")
    axis.set_ylabel("seconds (median)")
    axis.set_title("vqcodec on a 768×512 image (CPU)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed"))
    args = parser.parse_args()
    image = Image.open(args.image).convert("RGB")
    rows = [row for threads in args.threads for row in measure(image, threads, args.repeats)]
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "image": args.image.name,
        "size": list(image.size),
        "model": vqcodec.model_info()["name"],
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()},
        "repeats": args.repeats,
        "rows": rows,
    }
    (args.out / "speed.json").write_text(json.dumps(report, indent=2))
    plot(rows, args.out / "speed.png")
    print(f"wrote {args.out / 'speed.json'} and speed.png")


if __name__ == "__main__":
    main()
