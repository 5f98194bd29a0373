"""Rate–distortion benchmark: vqcodec against JPEG, WebP, AVIF, JPEG 2000 and JPEG XL.

For every image, codec and rate setting: encode to real bytes, decode, and score (bpp from
the byte count, PSNR, MS-SSIM, HaarPSI, encode/decode seconds). Writes to `--out`:
`<curve>.json` (CompressAI schema plus per-image rows), `rd.json` (run facts, skipped
codecs, BD table), `rd_<metric>.png`, `side_by_side.png`, `table.md` and `summary.md`;
curves and a picture that an earlier run wrote there and this one does not replace are removed.

    python benchmarks/rd.py ../shared/data/kodak --reference benchmarks/reference/compressai_kodak.csv

`make rd-kodak` runs the Kodak benchmark exactly as committed in benchmarks/results/kodak.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from rd_codecs import CODEC_NAMES, Codec, build_codecs
from rd_compare import draw_side_by_side, matched_panels
from rd_measure import load_images, measure
from rd_plot import plot_all
from rd_reference import load_reference
from rd_report import bd_markdown, bd_table, same_rate_rows, summarize, summary_markdown, tables_markdown, write_json

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="folder of images (e.g. the 24 Kodak PNGs)")
    parser.add_argument("--codecs", default="all", help=f"comma-separated subset of {','.join(CODEC_NAMES)} (default: all)")
    parser.add_argument("--model", default=None, help="vqcodec model name (default: the library default)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (quick runs)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: benchmarks/results/<dataset folder name>)"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="CSV of published curves on this dataset to draw and use as BD anchors "
        "(e.g. benchmarks/reference/compressai_kodak.csv for Kodak)",
    )
    parser.add_argument(
        "--compare",
        default=None,
        help="comma-separated image names (without extension) for the side-by-side picture (default: the first 3 images)",
    )
    parser.add_argument(
        "--compare-stages",
        type=int,
        default=None,
        help="vqcodec stage count shown in the side-by-side picture (default: all stages)",
    )
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crops in the picture")
    parser.add_argument("--max-bpp", type=float, default=2.0, help="right end of the plots' bpp axis")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="images measured in parallel, one single-threaded process each; keep it at "
        "or below the number of idle cores so timings stay single-core timings",
    )
    args = parser.parse_args(argv)
    args.codecs = list(CODEC_NAMES) if args.codecs == "all" else [c.strip() for c in args.codecs.split(",")]
    unknown = sorted(set(args.codecs) - set(CODEC_NAMES))
    if unknown:
        parser.error(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(CODEC_NAMES)}")
    if args.jobs < 1 or (args.limit is not None and args.limit < 1):
        parser.error("--jobs and --limit must be at least 1")
    if not args.dataset.is_dir():
        parser.error(f"dataset folder {args.dataset} does not exist")
    args.out = args.out or REPO_ROOT / "benchmarks" / "results" / args.dataset.resolve().name.lower()
    return args


_WORKER_CODECS: list[Codec] = []


def _init_worker(names: list[str], model: str | None) -> None:
    torch.set_num_threads(1)
    _WORKER_CODECS[:] = build_codecs(names, model)[0]  # codec closures cannot be pickled; rebuild


def _measure_image(item: tuple[str, object]) -> list[dict]:
    name, rgb = item
    return [row for codec in _WORKER_CODECS for setting in codec.settings for row in measure(codec, name, rgb, setting)]


def run_points(images: dict, codecs: list[Codec], model: str | None, jobs: int) -> list[dict]:
    """Measure every (image, codec, setting), with a progress bar; `jobs` > 1 splits images over processes."""
    rows = []
    per_image = sum(len(c.settings) for c in codecs)
    with tqdm(total=len(images) * per_image, unit="point", file=sys.stderr) as bar:
        if jobs > 1:
            context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
            with context.Pool(jobs, _init_worker, ([c.name for c in codecs], model)) as pool:
                for image_rows in pool.imap(_measure_image, images.items()):
                    rows += image_rows
                    bar.update(per_image)
            return rows
        for image_name, rgb in images.items():
            for codec in codecs:
                bar.set_description(f"{image_name} {codec.name}")
                for setting in codec.settings:
                    rows += measure(codec, image_name, rgb, setting)
                    bar.update()
    return rows


def _compare_images(images: dict, names: str | None) -> dict:
    if names is None:
        return dict(list(images.items())[:3])
    wanted = [n.strip() for n in names.split(",")]
    chosen = {name: rgb for name, rgb in images.items() if Path(name).stem in wanted}
    missing = sorted(set(wanted) - {Path(n).stem for n in chosen})
    if missing:
        print(f"notice: side-by-side images not found (or beyond --limit): {', '.join(missing)}", file=sys.stderr)
    return chosen


def _side_by_side(args: argparse.Namespace, images: dict, codecs: list[Codec], notes: list[str]) -> Path | None:
    vq = next((c for c in codecs if c.name == "vqcodec"), None)
    chosen = _compare_images(images, args.compare)
    if vq is None or not chosen:
        notes.append("side-by-side picture not drawn: it needs vqcodec and at least one chosen image")
        return None
    stages = args.compare_stages or int(max(vq.settings))
    if stages not in vq.settings:
        notes.append(f"side-by-side picture not drawn: the model has no {stages}-stage setting")
        return None
    path = args.out / "side_by_side.png"
    draw_side_by_side(matched_panels(chosen, codecs, stages), args.crop, path)
    return path


def _figure_link(path: Path) -> str:
    """Path for markdown links: relative to the repository root when the output lives inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else path.name


def remove_stale_outputs(out: Path, curves: dict, picture: Path | None) -> None:
    """Delete what the run indexed in `out/rd.json` wrote and this run does not replace: the
    curves of codecs it measured and this run skipped or was not asked for (the other
    benchmarks take every curve file in the folder as an anchor, so a stale one would be
    compared against as if measured now), and its side-by-side picture when none is drawn."""
    index = out / "rd.json"
    if not index.is_file():
        return
    try:
        previous = json.loads(index.read_text())["curves"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"notice: cannot read the previous run's {index} ({error}): its curves stay", file=sys.stderr)
        return
    stale = [out / f"{name}.json" for name in previous if name not in curves and Path(name).name == name]
    if picture is None:
        stale.append(out / "side_by_side.png")
    for path in stale:
        if path.is_file():
            path.unlink()
            print(f"notice: removed {path.name} of the previous run: this run did not measure it", file=sys.stderr)


def write_outputs(args: argparse.Namespace, curves: dict, meta: dict, reference: dict, picture: Path | None) -> None:
    remove_stale_outputs(args.out, curves, picture)
    bd = bd_table(curves, reference)
    for name, document in curves.items():
        write_json(args.out / f"{name}.json", document)
    write_json(
        args.out / "rd.json",
        {**meta, "curves": {n: f"{n}.json" for n in curves}, "bd": bd, "same_rate_jpeg": same_rate_rows(curves)},
    )
    plots = plot_all(curves, reference, f"{meta['dataset']} ({meta['images']} images)", args.out, args.max_bpp)
    figures = {f"RD curves, {m}": _figure_link(p) for m, p in plots.items() if m != "haarpsi"}
    if picture is not None:
        figures["Side by side at matched file sizes"] = _figure_link(picture)
    (args.out / "table.md").write_text(tables_markdown(curves, bd, meta))
    (args.out / "summary.md").write_text(summary_markdown(curves, bd, meta, figures))
    print(bd_markdown(bd))


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished workers."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # timings are single-threaded for every codec
    start, start_cpu = time.perf_counter(), _cpu_seconds()
    images, notes = load_images(args.dataset, args.limit)
    codecs, skipped = build_codecs(args.codecs, args.model)
    for name, reason in skipped.items():
        print(f"notice: skipping {name}: {reason}", file=sys.stderr)
    if not codecs:
        print("error: no requested codec can run here", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run_points(images, codecs, args.model, args.jobs)
    scales = sorted({r["ms_ssim_scales"] for r in rows})
    if scales != [5]:
        notes.append(f"MS-SSIM used {scales} scales: images under 176 px cannot use 5")
    picture = _side_by_side(args, images, codecs, notes)
    reference = load_reference(args.reference) if args.reference else {}
    meta = {
        "dataset": args.dataset.resolve().name,
        "images": len(images),
        "image_names": list(images),
        "codecs": [c.name for c in codecs],
        "skipped": skipped,
        "notes": notes,
        "ms_ssim_scales": scales,
        "threads": 1,
        "jobs": args.jobs,
        "platform": f"{platform.machine()}, Python {platform.python_version()}",
        "command": "python benchmarks/rd.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "table": _figure_link(args.out / "table.md"),
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": _cpu_seconds() - start_cpu,
    }
    write_outputs(args, summarize(rows, codecs), meta, reference, picture)
    print(f"wrote {args.out} in {meta['wall_seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
