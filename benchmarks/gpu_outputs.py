"""Puts what a GPU job made into its output folder within the limits on what comes back
(benchmarks/gpu_run.sh): at most `--max-files` files of at most `--max-bytes` each.

The run logs (each phase's config.json and metrics.jsonl) go into one archive. The weights
(the realism phase's file, which holds the whole codec, else the VQ-VAE's) are copied as
they are when they fit, split into byte-exact parts when one file is too large (rejoin with
`cat NAME.part-* > NAME`; the sha256 printed here checks the result), and cast to bf16 only
when even the parts would not fit the files left. Standard library only, except for that
cast: it must run when the project's own install failed.

    python benchmarks/gpu_outputs.py --runs RUNS --out OUT
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import sys
import tarfile
from pathlib import Path

MiB = 2**20
LOG_NAMES = ("config.json", "metrics.jsonl")


def archive_logs(runs: Path, target: Path) -> list[str]:
    """Every phase's config and metrics under `runs` into the tar.gz `target`; the names added."""
    names = sorted(str(path.relative_to(runs)) for name in LOG_NAMES for path in runs.rglob(name))
    with tarfile.open(target, "w:gz") as archive:
        for name in names:
            archive.add(runs / name, arcname=name)
    return names


def pick_weights(runs: Path) -> Path | None:
    """The most complete weights file a job wrote: both decoders if the realism phase ran."""
    return next(
        (p for p in (runs / "vqgan" / "weights.safetensors", runs / "vqvae" / "weights.safetensors") if p.is_file()), None
    )


def cast_to_bf16(source: Path, target: Path) -> None:
    """`source` (safetensors) with every floating-point tensor in bfloat16, metadata kept."""
    import safetensors
    import safetensors.torch
    import torch

    with safetensors.safe_open(str(source), "pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    cast = {name: t.to(torch.bfloat16) if t.is_floating_point() else t for name, t in tensors.items()}
    safetensors.torch.save_file(cast, str(target), metadata={**metadata, "cast": "bfloat16"})


def place(source: Path, out: Path, name: str, slots: int, max_bytes: int) -> list[Path]:
    """`source` into `out` as `name`, split into `name.part-NN` when larger than `max_bytes`,
    in at most `slots` files; ValueError when it cannot fit."""
    size = source.stat().st_size
    parts = max(1, math.ceil(size / max_bytes))
    if parts > slots:
        raise ValueError(f"{source} ({size / MiB:.1f} MiB) needs {parts} files of {max_bytes / MiB:g} MiB, {slots} are left")
    if parts == 1:
        shutil.copyfile(source, out / name)
        return [out / name]
    written = []
    with open(source, "rb") as whole:
        for index in range(parts):
            written.append(out / f"{name}.part-{index:02d}")
            written[-1].write_bytes(whole.read(max_bytes))
    return written


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def place_weights(weights: Path, out: Path, slots: int, max_bytes: int) -> tuple[Path, list[Path]]:
    """The weights in full precision if they fit `slots` files, else cast to bf16:
    (the file placed, the files written)."""
    try:
        return weights, place(weights, out, weights.name, slots, max_bytes)
    except ValueError as error:
        print(f"{error}: casting to bf16")
    cast = weights.with_name(weights.stem + "-bf16.safetensors")
    cast_to_bf16(weights, cast)
    return cast, place(cast, out, cast.name, slots, max_bytes)


def check_limits(out: Path, max_files: int, max_bytes: int) -> list[str]:
    """Print every file in `out` with its size; the limits it breaks, if any."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    for path in files:
        print(f"  {path.stat().st_size / MiB:8.2f} MiB  {path.relative_to(out)}")
    problems = [f"{len(files)} files, more than {max_files}"] if len(files) > max_files else []
    problems += [f"{p.name} is over {max_bytes / MiB:g} MiB" for p in files if p.stat().st_size > max_bytes]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="the job's training folder (vqvae/, vqgan/)")
    parser.add_argument("--out", type=Path, required=True, help="the output folder; files already there count")
    parser.add_argument("--max-files", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=16 * MiB)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logs = archive_logs(args.runs, args.out / "runs-logs.tar.gz") if args.runs.is_dir() else []
    if logs:
        print(f"runs-logs.tar.gz: {', '.join(logs)}")
    else:
        (args.out / "runs-logs.tar.gz").unlink(missing_ok=True)
        print("no run logs to archive")
    weights = pick_weights(args.runs)
    if weights is None:
        print("no weights were written")
    else:
        slots = args.max_files - sum(1 for p in args.out.rglob("*") if p.is_file())
        source, placed = place_weights(weights, args.out, slots, args.max_bytes)
        names = " ".join(p.name for p in placed)
        print(f"weights: {source} -> {names} (sha256 of the whole file: {sha256(source)})")
    problems = check_limits(args.out, args.max_files, args.max_bytes)
    for problem in problems:
        print(f"over the limits: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
