"""Memory and time of `vqcodec encode`/`decode` on large photos: tiled (as shipped) and, where
asked, the whole-image path beside it.

Each photo is a mosaic of training images scaled up to about 1 MP apiece (3:2, the size of a
camera's frame), stored as PPM so that reading and writing it costs little next to the
codec. Each command runs in its own process; peak RSS is that process's own (VmHWM, read as
it exits), time is wall time.
A process's fixed cost (starting Python, loading torch, the model and the prior) is measured
in the same run, as the same commands on a 64×64 image, and taken off before time is divided
by megapixels. The whole-image path is the same command with one tile larger than the image
(its grid coded whole, as format version 1). The tiled and whole files are compared too:
bits per pixel and PSNR.

    python benchmarks/tiles.py ../shared/data/train --sizes 1,12,24,50,100 --whole-up-to 24 \\
        --out benchmarks/results/tiles

`--weights` and `--prior-file` measure a model outside the zoo (both commands get them).

(The codec takes at most 2**27 pixels, 134 MP, per image.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from plotting import save_figure
from vqcodec.imaging import MAX_CODEC_PIXELS
from vqcodec.train.data import list_images

PIECE = (1224, 816)  # one training image in the mosaic: about 1 MP, 3:2
WHOLE_IMAGE = "import vqcodec.tiling; vqcodec.tiling.TILE_TOKENS = 1 << 20"


def mosaic(files: list[Path], megapixels: float, seed: int) -> np.ndarray:
    """uint8 `[H,W,3]`, 3:2, about `megapixels` MP, tiled with randomly chosen training photos."""
    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(width / 1.5))
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, PIECE[1]):
        for left in range(0, width, PIECE[0]):
            with Image.open(files[rng.integers(len(files))]) as image:
                piece = np.asarray(image.convert("RGB").resize(PIECE, Image.BICUBIC))
            bottom, right = min(top + PIECE[1], height), min(left + PIECE[0], width)
            out[top:bottom, left:right] = piece[: bottom - top, : right - left]
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images, in row blocks (the images are up to 100 MP)."""
    squared = sum(
        float(np.square(a[top : top + 1024].astype(np.float64) - b[top : top + 1024]).sum()) for top in range(0, a.shape[0], 1024)
    )
    return 10 * np.log10(255.0**2 / (squared / a.size))


# The child's own peak, read from /proc as it exits: the kernel's ru_maxrss of a child also
# counts the RSS its parent had when it started (kept across exec), and this process holds
# the photos, up to 100 MP.
REPORT_PEAK = """
import atexit, os
def _report_peak():
    with open("/proc/self/status") as status, open(os.environ["PEAK_RSS_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(_report_peak)
"""


def run(arguments: list[str], setup: str = "") -> dict:
    """Wall seconds and peak RSS (MB) of one `vqcodec` command in a fresh process."""
    code = f"{REPORT_PEAK}\n{setup}\nfrom vqcodec.cli import main\nmain()"
    with tempfile.NamedTemporaryFile(suffix=".peak") as peak:
        started = time.perf_counter()
        status = subprocess.run([sys.executable, "-c", code, *arguments], env={**os.environ, "PEAK_RSS_FILE": peak.name})
        seconds = time.perf_counter() - started
        if status.returncode != 0:
            raise RuntimeError(f"vqcodec {' '.join(arguments)} failed with status {status.returncode}")
        peak_kib = int(Path(peak.name).read_text())
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_kib / 1024, 1)}


def startup(folder: Path, model: list[str]) -> dict:
    """Seconds of encoding and decoding a 64×64 image: the fixed cost of one command."""
    tiny = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    result = measure(tiny, folder, "startup", "", model)
    return {step: result[step]["seconds"] for step in ("encode", "decode")}


def measure(photo: np.ndarray, folder: Path, name: str, setup: str, model: list[str]) -> dict:
    """`vqcodec encode` and `decode` of `photo` (with the options `model`, both commands) in
    `folder`: each command's time and peak RSS, the stream's size, the decoded image."""
    source, stream, decoded = folder / f"in-{photo.shape[0]}x{photo.shape[1]}.ppm", folder / f"{name}.vqc", folder / f"{name}.ppm"
    if not source.exists():
        Image.fromarray(photo).save(source)
    encode = run(["encode", str(source), str(stream), "--force", *model], setup)
    # the codec's own limit, not the default bound on claims from unknown files
    decode = run(["decode", str(stream), str(decoded), "--force", "--max-pixels", str(MAX_CODEC_PIXELS), *model], setup)
    with Image.open(decoded) as image:
        result = np.asarray(image)
    return {
        "encode": encode,
        "decode": decode,
        "bytes": stream.stat().st_size,
        "bpp": 8 * stream.stat().st_size / photo[..., 0].size,
        "version": stream.read_bytes()[4],
        "psnr": psnr(photo, result),
        "decoded": result,
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, speed) = plt.subplots(1, 2, figsize=(11, 4))
    for path_name, style in (("tiled", "o-"), ("whole", "s--")):
        points = [row for row in rows if path_name in row]
        mp = [row["megapixels"] for row in points]
        for step, colour in (("encode", "tab:blue"), ("decode", "tab:orange")):
            memory.plot(
                mp,
                [row[path_name][step]["peak_rss_mb"] / 1024 for row in points],
                style,
                color=colour,
                label=f"{step}, {path_name}",
            )
            speed.plot(
                mp,
                [row[path_name][step]["seconds_per_mp"] for row in points],
                style,
                color=colour,
                label=f"{step}, {path_name}",
            )
    memory.axhline(1.5, color="gray", linestyle=":", label="1.5 GB")
    memory.set_ylabel("peak RSS (GB)")
    speed.set_ylabel("seconds per megapixel (start-up taken off)")
    speed.set_ylim(bottom=0)
    for axis in (memory, speed):
        axis.set_xscale("log")
        axis.set_xlabel("megapixels")
    save_figure(figure, (memory, speed), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="folder of photos to build the mosaics from (training images)")
    parser.add_argument("--sizes", default="1,12,24,50", help="megapixels, comma-separated")
    parser.add_argument("--whole-up-to", type=float, default=24, help="also run the whole-image path up to this size")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tiles"))
    parser.add_argument("--weights", type=Path, help="a codec weights file to measure instead of the shipped model")
    parser.add_argument("--prior-file", type=Path, help="the context prior file to code with (with --weights)")
    args = parser.parse_args()
    model = ["--weights", str(args.weights)] if args.weights else []
    model += ["--prior-file", str(args.prior_file)] if args.prior_file else []
    files = list_images(args.images)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        fixed = startup(Path(folder), model)
    print(json.dumps({"startup_seconds": fixed}), flush=True)
    for index, megapixels in enumerate(float(size) for size in args.sizes.split(",")):
        photo = mosaic(files, megapixels, seed=index)
        row = {"megapixels": round(photo[..., 0].size / 1e6, 2), "width": photo.shape[1], "height": photo.shape[0]}
        paths = ["tiled", "whole"] if megapixels <= args.whole_up_to else ["tiled"]
        with tempfile.TemporaryDirectory() as folder:
            for name in paths:
                row[name] = measure(photo, Path(folder), name, WHOLE_IMAGE if name == "whole" else "", model)
                for step in ("encode", "decode"):
                    work = row[name][step]["seconds"] - fixed[step]
                    row[name][step]["seconds_per_mp"] = round(work / row["megapixels"], 3)
            if "whole" in row:
                row["psnr_tiled_minus_whole"] = row["tiled"]["psnr"] - row["whole"]["psnr"]
                row["bpp_tiled_over_whole"] = row["tiled"]["bpp"] / row["whole"]["bpp"]
                row["max_pixel_difference"] = int(np.abs(row["tiled"]["decoded"].astype(int) - row["whole"]["decoded"]).max())
        for name in paths:
            del row[name]["decoded"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "weights": str(args.weights or "shipped"),
        "startup_seconds": fixed,
        "rows": rows,
    }
    (args.out / "tiles.json").write_text(json.dumps(summary, indent=1))
    plot(rows, args.out / "tiles.png")


if __name__ == "__main__":
    main()
