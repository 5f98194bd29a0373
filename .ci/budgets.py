"""Size budgets of the repository and the package, checked in CI.

- The wheel (`pip wheel --no-deps .`) stays under WHEEL_LIMIT and holds exactly one model:
  one codec and one context prior in `vqcodec/weights/`.
- The tracked files stay under TRACKED_LIMIT in all, not counting at most one training
  resume state (`*.pt`), which a run keeps only while it is under way. A job sent to a
  machine that takes the working tree with it (64 MiB at most) then has room for its data.

    python .ci/budgets.py                      # both checks; exit 1 with the numbers if broken
    python .ci/budgets.py --listing FILE.json  # check a listing [[path, bytes], ...] instead of git's
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MIB = 1 << 20
TRACKED_LIMIT = 40 * MIB
WHEEL_LIMIT = 40 * 10**6
WEIGHTS_FOLDER = "vqcodec/weights/"


def tracked_problems(listing: list[tuple[str, int]]) -> list[str]:
    """What breaks the tracked-files budget in a listing of (path, bytes)."""
    resume_states = [(path, size) for path, size in listing if path.endswith(".pt")]
    problems = []
    if len(resume_states) > 1:
        problems.append(
            f"{len(resume_states)} training states are tracked ({', '.join(p for p, _ in resume_states)}); "
            "at most one resume state may be, while its run is under way"
        )
    counted = sum(size for path, size in listing if not path.endswith(".pt"))
    if counted > TRACKED_LIMIT:
        largest = sorted(listing, key=lambda item: -item[1])[:5]
        problems.append(
            f"tracked files take {counted / MIB:.1f} MiB (resume state aside), over the "
            f"{TRACKED_LIMIT / MIB:.0f} MiB budget; largest: "
            + ", ".join(f"{path} {size / MIB:.1f} MiB" for path, size in largest)
        )
    return problems


def wheel_problems(wheel_bytes: int, members: list[str]) -> list[str]:
    """What breaks the package budget: the wheel's size and the model files it holds."""
    problems = []
    if wheel_bytes > WHEEL_LIMIT:
        problems.append(f"the wheel is {wheel_bytes / 1e6:.1f} MB, over the {WHEEL_LIMIT / 1e6:.0f} MB budget")
    weights = [name for name in members if name.startswith(WEIGHTS_FOLDER) and not name.endswith("__init__.py")]
    priors = [name for name in weights if "-prior" in Path(name).name]
    codecs = [name for name in weights if name not in priors]
    if (len(codecs), len(priors)) != (1, 1):
        problems.append(
            f"the wheel holds {len(codecs)} codec and {len(priors)} prior files ({', '.join(weights) or 'none'}); "
            "it must hold exactly one of each"
        )
    return problems


def git_listing(root: Path) -> list[tuple[str, int]]:
    paths = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout.decode().split("\0")
    return [(path, (root / path).stat().st_size) for path in paths if path and (root / path).is_file()]


def built_wheel(root: Path) -> tuple[int, list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", folder, str(root)], check=True)
        (wheel,) = Path(folder).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            return wheel.stat().st_size, archive.namelist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--listing", type=Path, help="JSON [[path, bytes], ...] to check instead of the git listing; the wheel is then not built"
    )
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    if args.listing:
        problems = tracked_problems([(path, int(size)) for path, size in json.loads(args.listing.read_text())])
    else:
        listing = git_listing(root)
        wheel_bytes, members = built_wheel(root)
        problems = tracked_problems(listing) + wheel_problems(wheel_bytes, members)
        counted = sum(size for path, size in listing if not path.endswith(".pt"))
        print(
            f"budgets: tracked {counted / MIB:.1f} MiB of {TRACKED_LIMIT / MIB:.0f}, "
            f"wheel {wheel_bytes / 1e6:.1f} MB of {WHEEL_LIMIT / 1e6:.0f}"
        )
    for problem in problems:
        print(f"budget broken: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
