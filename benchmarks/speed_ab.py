"""Encode/decode time of one image under two revisions of the code, timed in the same rounds:
how much faster a change made the codec, which `speed.py` (models side by side, one code
version) cannot say, and timings taken in separate runs on a noisy machine say badly.

    python benchmarks/speed_ab.py BASE_REV [--new REV] [--stages 8] [--threads 2] [--repeats 9] \\
        [--out benchmarks/results/speed-ab]

Each revision runs in a worker process of its own, importing the package from a git worktree
of that revision (the working tree itself for `--new`'s default), with its own shipped
model. Every round times one encode and one decode in each worker, in turn (`speed.py`'s
rounds), so drift moves both alike; the report holds medians, their ratio, and whether both
revisions wrote the same stream (a speed change should not change the bytes).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from plotting import save_figure
from speed import timed_rounds

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = ROOT / "tests" / "data" / "kodim23.png"

# Runs inside a worker: loads the image and the model once, then answers one line per request.
WORKER = """
import hashlib, sys, torch, vqcodec
from PIL import Image
torch.set_num_threads(int(sys.argv[3]))
image, stages = Image.open(sys.argv[1]).convert("RGB"), int(sys.argv[2])
data = vqcodec.compress(image, stages=stages)
vqcodec.decompress(data)
print(hashlib.sha256(data).hexdigest(), flush=True)
for request in sys.stdin:
    vqcodec.compress(image, stages=stages) if request.strip() == "encode" else vqcodec.decompress(data)
    print("done", flush=True)
"""


class Worker:
    """One revision's process: `run("encode")` / `run("decode")` runs one request there."""

    def __init__(self, source: Path, image: Path, stages: int, threads: int) -> None:
        environment = {**os.environ, "PYTHONPATH": str(source)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(image), str(stages), str(threads)],
            cwd=source,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.stream_sha256 = self._answer()

    def _answer(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.process.wait()} before answering")
        return line.strip()

    def run(self, request: str) -> None:
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        self._answer()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def git_worktree(*arguments: str) -> None:
    subprocess.run(["git", "worktree", *arguments], cwd=ROOT, check=True, capture_output=True)


def revision_name(revision: str | None) -> str:
    if revision is None:
        return "working tree"
    return subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def timed_requests(workers: dict[str, Worker], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of every encode and decode request of each worker, timed in the same rounds."""
    requests = [(name, request) for request in ("encode", "decode") for name in workers]
    spent = timed_rounds([functools.partial(workers[name].run, request) for name, request in requests], repeats)
    times: dict[str, dict[str, list[float]]] = {name: {} for name in workers}
    for (name, request), seconds in zip(requests, spent, strict=True):
        times[name][request] = seconds
    return times


def plot(times: dict[str, dict[str, list[float]]], title: str, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, request in zip(axes, ("encode", "decode"), strict=True):
        for name, spent in times.items():
            axis.plot(
                range(1, len(spent[request]) + 1),
                spent[request],
                "o-",
                label=f"{name} (median {statistics.median(spent[request]):.3f} s)",
            )
        axis.set_xlabel("round")
        axis.set_ylabel("seconds")
        axis.set_title(f"{request}, {title}")
        axis.set_ylim(bottom=0)
    save_figure(figure, axes, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the revision to compare against (a commit, tag or branch)")
    parser.add_argument("--new", default=None, help="the revision to measure (default: the working tree)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--stages", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speed-ab")
    args = parser.parse_args()
    names = {"base": revision_name(args.base), "new": revision_name(args.new)}
    with tempfile.TemporaryDirectory() as folder:
        sources, worktrees = {}, []
        try:
            for role, revision in (("base", args.base), ("new", args.new)):
                sources[role] = ROOT if revision is None else Path(folder) / role
                if revision is not None:
                    git_worktree("add", "--detach", str(sources[role]), revision)
                    worktrees.append(sources[role])
            workers = {
                names[role]: Worker(source, args.image.resolve(), args.stages, args.threads) for role, source in sources.items()
            }
            times = timed_requests(workers, args.repeats)
            same_stream = len({worker.stream_sha256 for worker in workers.values()}) == 1
            for worker in workers.values():
                worker.close()
        finally:
            for worktree in worktrees:
                git_worktree("remove", "--force", str(worktree))
    base, new = names["base"], names["new"]
    medians = {
        name: {request: statistics.median(spent) for request, spent in requests.items()} for name, requests in times.items()
    }
    report = {
        "image": args.image.name,
        "stages": args.stages,
        "threads": args.threads,
        "repeats": args.repeats,
        "base": base,
        "new": new,
        "same_stream": same_stream,
        "median_s": medians,
        "new_over_base": {request: medians[new][request] / medians[base][request] for request in ("encode", "decode")},
        "seconds": times,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed_ab.json").write_text(json.dumps(report, indent=1))
    plot(times, f"{args.image.name}, {args.stages} stages, {args.threads} threads", args.out / "speed_ab.png")
    for request in ("encode", "decode"):
        ratio = report["new_over_base"][request]
        print(f"{request}: {base} {medians[base][request]:.3f} s, {new} {medians[new][request]:.3f} s, ratio {ratio:.3f}")
    print(f"same stream: {same_stream}; wrote {args.out}/speed_ab.json and speed_ab.png")


if __name__ == "__main__":
    main()
