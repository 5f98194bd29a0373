"""What a GPU job would carry, against its limit: the working tree as git sees it (tracked
files and untracked files that are not ignored) plus the ignored paths named (the packed
training data, the wheels). Exits 1, with the numbers, when the total is over the limit or a
named path is missing.

    python benchmarks/gpu_carry.py data/train wheels --limit-mib 64      # make gpu-carry-check
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

MiB = 2**20


def git_files(root: Path, *options: str) -> list[Path]:
    """Paths `git ls-files` lists under `root`, as they are in the working tree."""
    listing = subprocess.run(["git", "ls-files", "-z", *options], cwd=root, capture_output=True, check=True)
    return [root / name for name in listing.stdout.decode().split("\0") if name]


def size(path: Path) -> int:
    """Bytes of a file (a link counts as itself), or of every file under a folder."""
    if path.is_dir() and not path.is_symlink():
        return sum(p.lstat().st_size for p in path.rglob("*") if p.is_symlink() or p.is_file())
    return path.lstat().st_size if path.is_symlink() or path.exists() else 0  # deleted, not yet committed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="ignored paths the job carries, from the repository root")
    parser.add_argument("--limit-mib", type=float, default=64.0)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    root = args.root.resolve()
    named = [(root / path).resolve() for path in args.paths]
    missing = [str(path) for path, full in zip(args.paths, named) if not full.exists()]
    # An untracked file under a named path is counted once, with that path.
    untracked = [
        p
        for p in git_files(root, "--others", "--exclude-standard")
        if not any(p.resolve().is_relative_to(full) for full in named)
    ]
    tracked = git_files(root, "--cached")
    rows = [
        (f"tracked ({len(tracked)} files)", sum(size(p) for p in tracked)),
        (f"untracked, not ignored ({len(untracked)} files)", sum(size(p) for p in untracked)),
    ]
    rows += [(str(path), size(full)) for path, full in zip(args.paths, named)]
    total = sum(bytes_ for _, bytes_ in rows)
    for label, bytes_ in rows + [("total", total)]:
        print(f"{bytes_ / MiB:8.2f} MiB  {label}")
    print(f"{args.limit_mib:8.2f} MiB  limit ({(args.limit_mib * MiB - total) / MiB:+.2f} MiB left)")
    print("largest tracked files:")
    for path in sorted(tracked, key=size, reverse=True)[:5]:
        print(f"{size(path) / MiB:8.2f} MiB  {path.relative_to(root)}")
    for path in missing:
        print(f"missing: {path} (make gpu-data / make gpu-wheels)")
    if total > args.limit_mib * MiB:
        print(f"over the limit by {(total - args.limit_mib * MiB) / MiB:.2f} MiB")
    return 1 if missing or total > args.limit_mib * MiB else 0


if __name__ == "__main__":
    sys.exit(main())
