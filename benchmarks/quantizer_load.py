"""Nearest-codeword search and the context prior's coding loop on cores shared with other work.

For each torch thread count (1, 2) and each load, the run times, round after round with
every method once per round so that a change in load hits all alike:
  - `cdist_argmin`: the plain reference, `torch.cdist(x, c)` (the full N×K matrix) + min;
  - `addmm_argmin`: the full N×K matrix of ‖c‖² − 2·x·cᵀ in one addmm + min;
  - `chunked_2MiB`: the chunked torch path with the fixed 2 MiB chunks it had at any thread
    count before this benchmark;
  - `chunked_default`: the chunked torch path with its default chunks (`default_chunk_bytes`).
Each ratio is a method's time over cdist's in the same round, summarised over rounds (min,
median, max): speed is only compared within one condition of one run.

Loads are started before each condition and stopped after it, each in its own session (the
kernel schedules a session as a separate job, as it would another user's program):
  - idle: nothing added (other work on the machine, if any, still runs: see `loadavg_1min`);
  - spin: two pure-Python busy loops;
  - torch: one process looping a 256×1024 matmul and a row min on 2 torch threads, as a
    second codec process would; it competes for cores with parallel regions of its own.

The context prior's group loop runs in the same conditions: `coding.encode_stages` and
`coding.decode_stages` of the shipped model's indices of one Kodak image with its shipped
context prior, as shipped (on one thread whatever torch's setting: `devices.serial_on_cpu`)
and, as `*_all_threads`, the same loops on torch's threads (as they ran before); its times
are reported relative to the same call at 1 thread with no added load, next to cdist's on
the same footing, to see whether it suffers as the search does.

    python benchmarks/quantizer_load.py --out benchmarks/results/quantizer_load
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from kernel import addmm_argmin, cdist_argmin
from plotting import save_figure
from vqcodec import coding
from vqcodec.devices import exact_matmul
from vqcodec.entropy.grid_coding import decode_grid, encode_grid
from vqcodec.imaging import prepare_image
from vqcodec.kernels.torch_nearest import CPU_CHUNK_BYTES, default_chunk_bytes, nearest_codeword_torch
from vqcodec.zoo import load_model

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "tests" / "data" / "kodim23.png"
# The case, and one stage of a 768×512 (Kodak) image at stride 8.
CASES = ((65536, 1024, 32), (6144, 1024, 32))
# Each competing program prints a line once it runs, so timing starts under full load.
LOADS: dict[str, tuple[int, str]] = {
    "idle": (0, ""),
    "spin": (2, "print('ready', flush=True)\nwhile True:\n    pass\n"),
    "torch": (
        1,
        "import torch\ntorch.set_num_threads(2)\na, b = torch.randn(256, 1024), torch.randn(1024, 256)\n"
        "print('ready', flush=True)\nwhile True:\n    (a @ b).min(dim=1)\n",
    ),
}
REFERENCE = "cdist_argmin"


@contextlib.contextmanager
def competing_load(name: str) -> Iterator[None]:
    """Runs load `name`'s processes for the duration of the block."""
    count, code = LOADS[name]
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
        for _ in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {name!r} load process failed to start")
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def rounds_of(methods: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each method, `rounds` times, every method once per round (after a warm-up)."""
    for method in methods.values():
        method()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            started = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - started)
    return times


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def search_methods(x: torch.Tensor, codebook: torch.Tensor) -> dict[str, Callable[[], object]]:
    return {
        REFERENCE: lambda: cdist_argmin(x, codebook),
        "addmm_argmin": lambda: addmm_argmin(x, codebook),
        "chunked_2MiB": lambda: nearest_codeword_torch(x, codebook, chunk_bytes=CPU_CHUNK_BYTES),
        "chunked_default": lambda: nearest_codeword_torch(x, codebook),
    }


def measure_search(x: torch.Tensor, codebook: torch.Tensor, rounds: int) -> dict:
    """Median seconds per method and the spread of each method's within-round ratio to cdist."""
    times = rounds_of(search_methods(x, codebook), rounds)
    return {
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "ratio_to_cdist": {
            name: spread([a / b for a, b in zip(t, times[REFERENCE])]) for name, t in times.items() if name != REFERENCE
        },
    }


def measure_prior(loaded, indices: np.ndarray, payloads: list[bytes], rounds: int) -> dict[str, dict[str, float]]:
    """Seconds (min, median, max) to encode every stage of `indices` and to decode `payloads`
    (their stream: the same at any thread count)."""
    prior, (_, h, w), k = loaded.context_prior, indices.shape, loaded.codec.config.codebook_size
    with exact_matmul():  # as coding's own calls run them, less the single thread
        times = rounds_of(
            {
                "encode_stages": lambda: coding.encode_stages(prior, indices),
                "decode_stages": lambda: coding.decode_stages(prior, payloads, h, w, k),
                "encode_stages_all_threads": lambda: encode_grid(prior, indices),
                "decode_stages_all_threads": lambda: decode_grid(prior, payloads, h, w, k),
            },
            rounds,
        )
    return {name: spread(t) for name, t in times.items()}


def check_agreement(x: torch.Tensor, codebook: torch.Tensor) -> float:
    """Share of rows where the default chunks pick the index the 2 MiB chunks pick (< 1
    only on fp32 near-ties that another summation order flips)."""
    ours = nearest_codeword_torch(x, codebook)[0]
    return (ours == nearest_codeword_torch(x, codebook, chunk_bytes=CPU_CHUNK_BYTES)[0]).double().mean().item()


def run(args: argparse.Namespace) -> dict:
    loaded = load_model()
    assert loaded.context_prior is not None
    stages = loaded.codec.config.stages
    indices = coding.quantize(loaded.codec, prepare_image(args.image).rgb, stages, loaded.context_prior)
    payloads = coding.encode_stages(loaded.context_prior, indices)
    g = torch.Generator().manual_seed(0)
    data = {case: (torch.randn(case[0], case[2], generator=g), torch.randn(case[1], case[2], generator=g)) for case in CASES}
    conditions = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for load in args.loads:
            with competing_load(load):
                condition: dict = {"threads": threads, "load": load, "loadavg_1min_before": os.getloadavg()[0]}
                condition["search"] = [
                    {"N": n, "K": k, "D": d, **measure_search(*data[n, k, d], args.rounds)} for n, k, d in CASES
                ]
                condition["prior"] = measure_prior(loaded, indices, payloads, args.prior_rounds)
            conditions.append(condition)
            print(json.dumps(summary_line(condition)), flush=True)
    return {
        "device": f"cpu ({platform.processor() or platform.machine()}), {os.cpu_count()} cores",
        "torch": torch.__version__,
        "rounds": args.rounds,
        "prior_rounds": args.prior_rounds,
        "loads": {name: {"processes": count, "code": code} for name, (count, code) in LOADS.items() if name in args.loads},
        "reference": "cdist_argmin: torch.cdist(x, c).min(dim=1), the full N×K matrix",
        "ratio_to_cdist": "a method's time / cdist's time in the same round: min, median, max over rounds",
        "default_chunk_MiB": {t: default_chunk_bytes(torch.device("cpu"), t) / 2**20 for t in args.threads},
        "indices_agree_default_vs_2MiB": {f"{n},{k},{d}": check_agreement(*data[n, k, d]) for n, k, d in CASES},
        "prior_image": {"name": Path(args.image).name, "grid": list(indices.shape)},
        "conditions": conditions,
        "prior_vs_1_thread_idle": relative_to_quiet(conditions),
    }


def summary_line(condition: dict) -> dict:
    search = {
        f"N={case['N']}": {method: round(r["median"], 2) for method, r in case["ratio_to_cdist"].items()}
        for case in condition["search"]
    }
    prior = {name: round(t["median"], 2) for name, t in condition["prior"].items()}
    return {"threads": condition["threads"], "load": condition["load"], "ratio_to_cdist": search, "prior_s": prior}


def relative_to_quiet(conditions: list[dict]) -> dict[str, dict[str, float]]:
    """Median time of the prior's calls and of cdist (first case) in each condition, over
    the same in the 1-thread idle condition: whether the prior degrades more than cdist."""
    quiet = next((c for c in conditions if c["threads"] == 1 and c["load"] == "idle"), None)
    if quiet is None:
        return {}
    cdist = lambda c: c["search"][0]["median_s"][REFERENCE]  # noqa: E731
    relative = {}
    for c in conditions:
        row = {name: t["median"] / quiet["prior"][name]["median"] for name, t in c["prior"].items()}
        row[REFERENCE] = cdist(c) / cdist(quiet)
        relative[f"{c['threads']} thread(s), {c['load']}"] = row
    return relative


def plot(report: dict, path: Path) -> None:
    """Left: each search method's time over cdist's per condition (median, min–max bars).
    Right: the prior's calls and cdist, each over its own 1-thread idle time."""
    conditions = report["conditions"]
    labels = [f"{c['threads']}t {c['load']}" for c in conditions]
    figure, (search, prior) = plt.subplots(1, 2, figsize=(12, 4.2))
    methods = list(conditions[0]["search"][0]["ratio_to_cdist"])
    width = 0.8 / len(methods)
    positions = np.arange(len(conditions))
    for i, method in enumerate(methods):
        ratios = [c["search"][0]["ratio_to_cdist"][method] for c in conditions]
        median = np.array([r["median"] for r in ratios])
        errors = [median - [r["min"] for r in ratios], [r["max"] for r in ratios] - median]
        search.bar(positions + (i - (len(methods) - 1) / 2) * width, median, width, yerr=errors, capsize=2, label=method)
    search.axhline(1.0, color="grey", lw=0.8)
    search.set_yscale("log")
    search.set_xticks(positions, labels, fontsize=8)
    n, k, d = (conditions[0]["search"][0][a] for a in "NKD")
    search.set_title(f"nearest codeword N={n}, K={k}, D={d}: time / cdist's in the same round", fontsize=9)
    relative = report["prior_vs_1_thread_idle"]
    for name in next(iter(relative.values()), {}):
        prior.plot(labels, [relative[key][name] for key in relative], "o-", label=name)
    prior.axhline(1.0, color="grey", lw=0.8)
    prior.set_yscale("log")
    prior.tick_params(axis="x", labelsize=8)
    prior.set_title("context prior's coding loop and cdist: median time / its 1-thread idle time", fontsize=9)
    save_figure(figure, (search, prior), path)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quantizer_load"))
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="image whose indices the prior codes")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--loads", nargs="+", choices=list(LOADS), default=list(LOADS))
    parser.add_argument("--rounds", type=int, default=7, help="timing rounds of the search per condition")
    parser.add_argument("--prior-rounds", type=int, default=3, help="timing rounds of the prior per condition")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quantizer_load.json").write_text(json.dumps(report, indent=1))
    plot(report, args.out / "quantizer_load.png")


if __name__ == "__main__":
    main()
