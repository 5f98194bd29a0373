"""Long fuzzing run over read_header, unpack and decompress (both priors), on one thread.

Seeds are real streams; inputs are CRC-consistent mutations of them (and of inputs that
reached a check no earlier input had), with some raw damage on top (tests/stream_fuzzer.py).
The report counts inputs, distinct checks reached (normalised BitstreamError messages) and
lines of the readers covered, and lists every input that broke the contract: an exception
other than BitstreamError, a hang past the per-input limit, or an allocation above the bound
derived from the claimed image size (tracemalloc peak and growth of the peak RSS).

    python benchmarks/fuzz.py --seconds 600 --out benchmarks/results/fuzz/
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: others share the machine

import argparse
import collections
import json
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from importlib.metadata import version

import torch

from tests.stream_fuzzer import (
    FUZZ_MAX_PIXELS,
    Hang,
    Parts,
    Unexpected,
    allocation_bound,
    check,
    mutate,
    seed_streams,
    warm_up,
)

# The code an input can reach: the container, the API's decode path, the entropy decoder, alpha.
COVERED_FILES = [
    "vqcodec/bitstream.py",
    "vqcodec/api.py",
    "vqcodec/entropy/grid_coding.py",
    "vqcodec/entropy/coder.py",
    "vqcodec/imaging.py",
]


def start_coverage():
    """Line coverage of COVERED_FILES from now on: what inputs reach, not what imports ran."""
    try:
        import coverage
    except ImportError:  # the report then has no line counts
        return None
    measured = coverage.Coverage(include=[str(ROOT / name) for name in COVERED_FILES], data_file=None)
    measured.start()
    return measured


def line_coverage(measured) -> dict:
    if measured is None:
        return {}
    measured.stop()
    report = {}
    for name in COVERED_FILES:
        _, statements, _, missing, _ = measured.analysis2(str(ROOT / name))
        report[name] = {"statements": len(statements), "reached_by_inputs": len(statements) - len(missing)}
    return report


def failure(kind: str, data: bytes, detail: str, out: Path, number: int) -> dict:
    path = out / "failures" / f"{kind}-{number:04d}.vqc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"kind": kind, "detail": detail[:300], "input": str(path.relative_to(out)), "bytes": len(data)}


def run(seconds: float, seed: int, time_limit: float, out: Path) -> dict:
    corpus = [Parts.parse(stream) for stream in seed_streams().values()]
    warm_up(corpus, time_limit)
    seeds = len(corpus)
    rng = random.Random(seed)
    outcomes = {name: collections.Counter() for name in ("read_header", "unpack", "unpack_prefix", "decompress")}
    seen, failures = set(), []
    slowest = traced_peak = rss_growth = inputs = 0
    measured = start_coverage()
    tracemalloc.start()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        data, parts = mutate(rng, corpus)
        inputs += 1
        try:
            result = check(data, time_limit)
        except Unexpected as error:
            failures.append(failure("unexpected", data, str(error), out, len(failures)))
            continue
        except Hang:
            failures.append(failure("hang", data, f"over {time_limit} s", out, len(failures)))
            continue
        bound = allocation_bound(data)
        if max(result.traced_peak, result.rss_growth) > bound:
            detail = f"traced {result.traced_peak} B, RSS peak +{result.rss_growth} B, bound {bound} B"
            failures.append(failure("allocation", data, detail, out, len(failures)))
        slowest, traced_peak = max(slowest, result.seconds), max(traced_peak, result.traced_peak)
        rss_growth = max(rss_growth, result.rss_growth)
        for name, outcome in result.outcomes.items():
            outcomes[name][outcome] += 1
        signature = tuple(result.outcomes.values())
        if signature not in seen:  # an input that reached something new is mutated further
            seen.add(signature)
            corpus.append(parts)
    elapsed = time.monotonic() - started
    tracemalloc.stop()
    distinct = set().union(*(counts.keys() for counts in outcomes.values())) - {"ok"}
    return {
        "seconds": round(elapsed, 1),
        "inputs": inputs,
        "inputs_per_second": round(inputs / elapsed, 1),
        "seed": seed,
        "seed_streams": seeds,
        "corpus_at_end": len(corpus),
        "distinct_bitstream_errors": len(distinct),
        "distinct_outcome_combinations": len(seen),
        "line_coverage": line_coverage(measured),
        "exceptions_other_than_bitstream_error": sum(f["kind"] == "unexpected" for f in failures),
        "hangs": sum(f["kind"] == "hang" for f in failures),
        "allocations_above_bound": sum(f["kind"] == "allocation" for f in failures),
        "failures": failures,
        "limits": {
            "seconds_per_input": time_limit,
            "max_pixels": FUZZ_MAX_PIXELS,
            "allocation_bound": "64 MiB + 1 KiB per claimed pixel (claims above max_pixels count as max_pixels)",
        },
        "slowest_input_seconds": round(slowest, 3),
        "largest_traced_peak_bytes": traced_peak,
        "largest_rss_peak_growth_bytes": rss_growth,
        "outcomes": {name: dict(counts.most_common()) for name, counts in outcomes.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=10.0, help="Seconds one input may take.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    report = run(args.seconds, args.seed, args.time_limit, args.out)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report["environment"] = {
        "command": " ".join(["python", "benchmarks/fuzz.py", *sys.argv[1:]]),
        "commit": commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "constriction": version("constriction"),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    (args.out / "long_run.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                key: report[key]
                for key in (
                    "inputs",
                    "distinct_bitstream_errors",
                    "exceptions_other_than_bitstream_error",
                    "hangs",
                    "allocations_above_bound",
                    "slowest_input_seconds",
                )
            }
        )
    )
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
