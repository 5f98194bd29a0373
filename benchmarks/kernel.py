"""Nearest-codeword search: vqcodec's kernels against plain torch, time and extra memory.

On CUDA the fused Triton kernel runs against `cdist+argmin` and `addmm+argmin` (both build
the N×K matrix); times are `triton.testing.do_bench` medians and extra memory is the CUDA
allocator's peak above the inputs. On the CPU the chunked torch path runs against the same
references; each round times every method once, in turn, so load from other processes hits
all alike, and the speed ratio is the median over rounds of the within-round ratio. CPU
extra memory is estimated from the algorithm (bytes of temporaries) and, as a cross-check,
measured as the growth of peak RSS (which undercounts memory the allocator reuses). The CPU
run also times the torch path over several chunk sizes (the default is chosen from these).

Cases are one-axis sweeps around a centre point (N, K, D) (or the full grid with --grid
full, or only the cases named with --case). A case is skipped, and listed, when its N×K
float32 matrix exceeds --max-matrix-gb (on the CPU 2 by default) or, on CUDA by default, when
the larger reference would not fit in the device memory free at the start: the goal case
asks for 65.3 GiB (its 64 GiB matrix, the rest, 1 GiB of headroom), so it runs on an 80 GB
card as on a 141 GB one. Every case reports its speed-up over the faster of
the two references (`speedup_vs_fastest`) next to the extra memory of each method.

    python benchmarks/kernel.py --out benchmarks/results/kernel            # CPU, 1 thread
    python benchmarks/kernel.py --device cuda --out benchmarks/results/kernel
    python benchmarks/kernel.py --device cuda --case 1048576,16384,32 --case 1048576,1024,32   # goal and codec
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import itertools
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vqcodec.kernels import nearest_codeword
from vqcodec.kernels.torch_nearest import chunk_rows, default_chunk_bytes, nearest_codeword_torch

Search = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
GOAL = {"N": 2**20, "K": 16384, "D": 32, "min_speedup": 3.0}  # the target on an H200
FULL_N, FULL_K, FULL_D = [2**p for p in range(12, 23, 2)], [256, 1024, 4096, 16384, 65536], [8, 32, 64, 128, 256]
# CPU sweeps stay small: 2 cores shared with other work; the 2 GB matrix limit skips the rest.
CPU_SWEEP = ((2**14, 1024, 32), {"N": [2**12, 2**14, 2**16, 2**18, 2**20], "K": FULL_K, "D": [8, 32, 128, 256]})
CHUNK_SWEEP_MB = [0.25, 0.5, 1, 2, 4, 8, 16]
REFERENCES = ("addmm_argmin", "cdist_argmin")
# Room left beside a reference's own bytes: do_bench's 256 MB cache-flush buffer, the
# allocator's rounding, and what CUDA and Triton allocate outside torch's count.
CUDA_HEADROOM_BYTES = 2**30


def cdist_argmin(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: full [N, K] Euclidean distance matrix, then min."""
    distance, index = torch.cdist(x, codebook).min(dim=1)
    return index, distance.square()


def addmm_argmin(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: full [N, K] matrix of ‖c‖² − 2·x·cᵀ in one addmm, then min."""
    norms = (codebook * codebook).sum(dim=1)  # [K]
    partial, index = torch.addmm(norms, x, codebook.t(), alpha=-2.0).min(dim=1)
    return index, partial + (x * x).sum(dim=1)


def estimated_extra_bytes(method: str, n: int, k: int, d: int, chunk_bytes: int | None = None) -> int:
    """Bytes of float32 temporaries each method allocates beyond its inputs and outputs."""
    if method == "cdist_argmin":  # distance matrix, plus norms and [·, D+2] padded copies (mm path)
        return 4 * (n * k + (n + k) * (d + 3))
    if method == "addmm_argmin":  # the matrix, codeword norms, row norms
        return 4 * (n * k + k + n)
    rows = min(n, chunk_rows(k, torch.device("cpu"), chunk_bytes))
    return 4 * (rows * k + rows * d + k)  # one [rows, K] buffer, row norms, codeword norms


def reference_peak_bytes(n: int, k: int, d: int) -> int:
    """Device bytes held at once while the larger reference runs: inputs, temporaries, outputs."""
    inputs = 4 * (n + k) * d
    outputs = 12 * n  # a float32 distance and an int64 index per row
    return inputs + max(estimated_extra_bytes(ref, n, k, d) for ref in REFERENCES) + outputs


def skip_reason(n: int, k: int, d: int, max_matrix_gb: float | None, free_bytes: int | None) -> str | None:
    """Why a case is not run, or None: its N×K matrix is over the limit given, or (no limit
    given, on CUDA) the larger reference would not fit in the memory free on the device."""
    if max_matrix_gb is not None:
        return f"N×K float32 matrix > {max_matrix_gb:.1f} GB" if 4 * n * k / 2**30 > max_matrix_gb else None
    need = reference_peak_bytes(n, k, d) + CUDA_HEADROOM_BYTES
    if need > free_bytes:
        return f"the references need {need / 2**30:.1f} GiB, {free_bytes / 2**30:.1f} GiB free on the device"
    return None


def release_cached_blocks(device: torch.device) -> None:
    """Before a case's inputs and before each method on CUDA, hand the allocator's free blocks
    back to the driver. A reference's N×K matrix (64 GiB at the goal case) stays cached once
    freed, and the allocator splits that block to serve the next smaller allocation; the next
    matrix would then need a second 64 GiB, more than an 80 GB card holds."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_rss_growth(work: Callable[[], object]) -> int | None:
    """Peak resident memory growth (bytes) while `work` runs (Linux), None where it cannot be read."""
    status = Path("/proc/self/status")
    try:
        # Hand freed heap pages back first, or a reused buffer would not show as growth.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets the VmHWM peak to VmRSS
    except OSError:
        return None
    before = _status_kib(status.read_text(), "VmRSS")
    work()
    return 1024 * (_status_kib(status.read_text(), "VmHWM") - before)


def _status_kib(text: str, field: str) -> int:
    line = next(line for line in text.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1])


def cuda_extra_bytes(search: Search, x: torch.Tensor, codebook: torch.Tensor) -> int:
    """Peak CUDA allocation above the inputs during one call (outputs included)."""
    torch.cuda.synchronize()
    release_cached_blocks(x.device)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    search(x, codebook)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def time_ms(search: Search, x: torch.Tensor, codebook: torch.Tensor) -> float:
    """One timing: do_bench's median on CUDA, a single wall-clock call on the CPU."""
    if x.is_cuda:
        import triton.testing

        release_cached_blocks(x.device)
        return triton.testing.do_bench(lambda: search(x, codebook), return_mode="median")
    start = time.perf_counter()
    search(x, codebook)
    return 1e3 * (time.perf_counter() - start)


def interleaved(methods: dict[str, Search], x: torch.Tensor, codebook: torch.Tensor, rounds: int) -> dict:
    """Median time per method, median within-round ratio of each method to the first, and the
    median within-round ratio of the fastest other method to the first."""
    for search in methods.values():  # warm-up: autotuning, allocator, caches
        release_cached_blocks(x.device)
        search(x, codebook)
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name, search in methods.items():
            times[name].append(time_ms(search, x, codebook))
    ours = next(iter(methods))
    others = [name for name in methods if name != ours]
    ratios = {name: statistics.median(t / o for t, o in zip(times[name], times[ours])) for name in others}
    fastest = statistics.median(min(times[name][r] for name in others) / times[ours][r] for r in range(rounds))
    return {
        "median_ms": {name: statistics.median(t) for name, t in times.items()},
        "speedup_vs": ratios,
        "speedup_vs_fastest": fastest,
    }


def cases(
    grid: str, centre: tuple[int, int, int], sweep: dict[str, list[int]], named: list[tuple[int, int, int]] | None = None
) -> list[tuple[int, int, int]]:
    """The `named` cases when given, else the full grid or one-axis sweeps through `centre`
    (each case once, in order)."""
    if named:
        return list(dict.fromkeys(named))
    if grid == "full":
        return list(itertools.product(FULL_N, FULL_K, FULL_D))
    n0, k0, d0 = centre
    picked = [(n, k0, d0) for n in sweep["N"]] + [(n0, k, d0) for k in sweep["K"]]
    picked += [(n0, k0, d) for d in sweep["D"]]
    return list(dict.fromkeys(picked))


def run_case(n: int, k: int, d: int, device: torch.device, rounds: int) -> dict:
    """Time and memory of every method on one (N, K, D), float32 Gaussian data."""
    release_cached_blocks(device)
    g = torch.Generator().manual_seed(n + k + d)
    x = torch.randn(n, d, generator=g).to(device)
    codebook = torch.randn(k, d, generator=g).to(device)
    backend = "triton" if device.type == "cuda" else "torch"
    ours = lambda a, b: nearest_codeword(a, b, backend=backend)  # noqa: E731
    methods = {backend: ours, "addmm_argmin": addmm_argmin, "cdist_argmin": cdist_argmin}
    result = {"N": n, "K": k, "D": d, **interleaved(methods, x, codebook, rounds)}
    release_cached_blocks(device)
    agree = (ours(x, codebook)[0] == addmm_argmin(x, codebook)[0]).double().mean().item()
    result["indices_agree_with_addmm"] = agree  # < 1 only on fp32 near-ties
    if device.type == "cuda":
        result["extra_bytes_measured"] = {name: cuda_extra_bytes(s, x, codebook) for name, s in methods.items()}
    else:
        result["extra_bytes_estimated"] = {name: estimated_extra_bytes(name, n, k, d) for name in methods}
        result["extra_bytes_rss_growth"] = {
            name: peak_rss_growth(functools.partial(s, x, codebook)) for name, s in methods.items()
        }
    return result


def chunk_sweep(n: int, k: int, d: int, rounds: int) -> dict:
    """CPU torch path at several chunk sizes, as ratios to the default chunk size."""
    g = torch.Generator().manual_seed(0)
    x, codebook = torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)
    methods = {"default": lambda a, b: nearest_codeword_torch(a, b)}
    for mb in CHUNK_SWEEP_MB:
        methods[f"{mb}MB"] = lambda a, b, cb=int(mb * 2**20): nearest_codeword_torch(a, b, chunk_bytes=cb)
    methods["addmm_argmin"] = addmm_argmin
    return {
        "N": n,
        "K": k,
        "D": d,
        "default_chunk_MB": default_chunk_bytes(torch.device("cpu"), torch.get_num_threads()) / 2**20,
        **interleaved(methods, x, codebook, rounds),
    }


def plot(report: dict, path: Path) -> None:
    """Speed-up of vqcodec's search over each reference along each swept axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = dict(zip("NKD", report["centre"]))
    panels = ["N", "K", "D"] + (["chunk"] if report.get("chunk_sweep") else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, axis in zip(axes[0], panels):
        if axis == "chunk":
            _plot_chunks(ax, report["chunk_sweep"])
            continue
        rows = [c for c in report["cases"] if all(c[a] == centre[a] for a in "NKD" if a != axis)]
        rows.sort(key=lambda c: c[axis])
        if len(rows) < 2:  # this axis was not swept (or every case on it was skipped)
            ax.set_visible(False)
            continue
        for ref in REFERENCES:
            ax.plot([c[axis] for c in rows], [c["speedup_vs"][ref] for c in rows], "o-", label=f"vs {ref}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(axis)
        ax.set_title(", ".join(f"{a}={v}" for a, v in centre.items() if a != axis), fontsize=9)
        ax.set_ylabel("speed-up (reference time / ours)")
        ax.legend(fontsize=8)
    fig.suptitle(f"nearest codeword, {report['device']}, {report['threads']} thread(s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_chunks(ax, sweeps: list[dict]) -> None:
    for sweep in sweeps:
        sizes = CHUNK_SWEEP_MB
        ax.plot(sizes, [sweep["speedup_vs"][f"{mb}MB"] for mb in sizes], "o-", label=f"K={sweep['K']}, D={sweep['D']}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("chunk size (MB)")
    ax.set_title("torch path: time / time at default chunk", fontsize=9)
    ax.legend(fontsize=8)


def parse_case(text: str) -> tuple[int, int, int]:
    """ "N,K,D" → (N, K, D), each a positive integer."""
    try:
        n, k, d = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a case is N,K,D (three integers), got {text!r}") from None
    if min(n, k, d) < 1:
        raise argparse.ArgumentTypeError(f"N, K and D must be ≥ 1, got {text!r}")
    return n, k, d


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kernel"))
    parser.add_argument("--grid", choices=["sweep", "full"], default="sweep")
    parser.add_argument(
        "--case",
        type=parse_case,
        action="append",
        metavar="N,K,D",
        help="time only this case (repeatable); replaces the grid and the CPU chunk sweep",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default: 7 CPU, 3 CUDA)")
    parser.add_argument(
        "--max-matrix-gb",
        type=float,
        default=None,
        help="skip cases whose N×K float32 matrix is larger (default: 2 on CPU; on CUDA, cases that would not fit)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    rounds = args.rounds or (3 if cuda else 7)
    max_matrix_gb = args.max_matrix_gb or (None if cuda else 2.0)
    free_bytes = torch.cuda.mem_get_info(device)[0] if cuda else None
    centre, sweep = ((GOAL["N"], GOAL["K"], GOAL["D"]), {"N": FULL_N, "K": FULL_K, "D": FULL_D}) if cuda else CPU_SWEEP
    report = {
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "threads": args.threads,
        "rounds": rounds,
        "grid": "named cases" if args.case else args.grid,
        "centre": list(centre),
        "dtype": "float32",
        "max_matrix_gb": max_matrix_gb,
        "device_free_gib": free_bytes / 2**30 if cuda else None,
        "timing": "do_bench median (ms)" if cuda else "median of interleaved single calls (ms)",
        "speedup_vs": "median over rounds of (reference time / our time) within a round",
        "speedup_vs_fastest": "median over rounds of (faster reference's time / our time) within a round",
        "memory": (
            "extra_bytes_measured: peak CUDA allocation above the inputs, outputs included"
            if cuda
            else "extra_bytes_estimated: float32 temporaries beyond inputs and outputs, from the algorithm; "
            "extra_bytes_rss_growth: measured peak RSS growth during one call, outputs included"
        ),
        "cuda_tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
        "cases": [],
        "skipped": [],
    }
    for n, k, d in cases(args.grid, centre, sweep, args.case):
        reason = skip_reason(n, k, d, max_matrix_gb, free_bytes)
        if reason:
            report["skipped"].append({"N": n, "K": k, "D": d, "reason": reason})
            continue
        report["cases"].append(run_case(n, k, d, device, rounds))
        shown = ("N", "K", "D", "median_ms", "speedup_vs", "speedup_vs_fastest")
        print(json.dumps({key: report["cases"][-1][key] for key in shown}), flush=True)
    if cuda:
        goal = next((c for c in report["cases"] if (c["N"], c["K"], c["D"]) == centre), None)
        report["goal"] = {**GOAL, "speedup_vs_fastest": goal["speedup_vs_fastest"] if goal else None}
    elif not args.case:
        report["chunk_sweep_note"] = "speedup_vs[size] = time at that chunk size / time at the default size"
        report["chunk_sweep"] = [chunk_sweep(2**14, k, 32, rounds) for k in (256, 1024, 16384)]
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cuda" if cuda else "cpu"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
    if args.case:  # a few named cases: no axis to plot along
        return
    plot(report, args.out / f"{name}.png")


if __name__ == "__main__":
    main()
