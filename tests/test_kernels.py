"""Nearest-codeword search: the fused Triton kernel, the chunked torch path, argument
validation and backend selection.

The Triton kernel runs in triton's CPU interpreter by default. With TRITON_INTERPRET=0 set
(on a machine with CUDA) the same tests run the compiled kernel on the GPU instead:
`TRITON_INTERPRET=0 python -m pytest tests/test_kernels.py`."""

import os

# triton reads this when a kernel is decorated, i.e. when kernels/triton_nearest.py is first
# imported; the dispatcher imports that module lazily, so setting it here, at collection, is
# early enough even when the whole suite runs in one process.
os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib.util
import subprocess
import sys

import pytest
import torch

from vqcodec.kernels import dispatch, nearest_codeword
from vqcodec.kernels.dispatch import interpreter_requested, triton_unavailable_reason
from vqcodec.kernels.torch_nearest import (
    CPU_CHUNK_BYTES,
    CPU_CHUNK_BYTES_PER_THREAD,
    GPU_CHUNK_BYTES,
    default_chunk_bytes,
    nearest_codeword_torch,
)

# Where the Triton backend's tests put their tensors: the interpreter runs on CPU tensors.
TRITON_DEVICE = "cpu" if interpreter_requested() else "cuda"
TRITON_UNAVAILABLE = triton_unavailable_reason(torch.device(TRITON_DEVICE))
if TRITON_UNAVAILABLE is None and TRITON_DEVICE == "cuda" and not torch.cuda.is_available():
    TRITON_UNAVAILABLE = "TRITON_INTERPRET=0 without a CUDA GPU"
needs_triton = pytest.mark.skipif(TRITON_UNAVAILABLE is not None, reason=str(TRITON_UNAVAILABLE))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
BACKENDS = [pytest.param("triton", marks=needs_triton), "torch"]

# Small tiles so that a short codebook still spans several tiles of rows and codewords.
SMALL_BLOCKS = {"BLOCK_N": 16, "BLOCK_K": 16, "BLOCK_D": 16}


def exact_nearest(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 brute force: indices, squared distances and the gap to the runner-up."""
    d2 = torch.cdist(x.double(), codebook.double()) ** 2  # [N, K]
    two = d2.topk(2, dim=1, largest=False)
    return two.indices[:, 0], two.values[:, 0], two.values[:, 1] - two.values[:, 0]


def tie_free(n: int, k: int, d: int, seed: int, dtype: torch.dtype = torch.float32):
    """Random x `[n, d]` and codebook `[k, d]` whose nearest codeword is clear in every row.

    Each x is a random codeword plus noise, as in a trained quantizer; plain Gaussian x
    against Gaussian codewords has near-ties that fp32 rounding order can flip.
    """
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(k, d, generator=g)
    picks = torch.randint(k, (n,), generator=g)
    x = (codebook[picks] + 0.3 * torch.randn(n, d, generator=g)).to(dtype)
    codebook = codebook.to(dtype)
    _, best, gap = exact_nearest(x, codebook)
    # Without this margin, fp32 rounding in any summation order could flip a row.
    assert (gap > 1e-4 * best.clamp_min(1.0)).all(), "seed produced a near-tie; pick another"
    return x, codebook


def tied_codebook() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Small integer data (every sum exact in fp32) with ties inside and across 16-wide tiles.

    Returns x `[5, 8]`, codebook `[40, 8]` and the expected (lowest tied) indices `[5]`.
    """
    g = torch.Generator().manual_seed(3)
    codebook = torch.randint(-20, 21, (40, 8), generator=g).float()
    codebook[:, 0] = torch.arange(40) * 10.0  # keeps all non-duplicated codewords far apart
    codebook[9] = codebook[5]  # duplicate in the same tile
    codebook[37] = codebook[20]  # duplicate two tiles later
    codebook[33] = codebook[31] = codebook[17]  # three copies over two tiles
    e = torch.zeros(8)
    e[1] = 1.0
    offset = torch.full((8,), 50.0)
    codebook[39], codebook[2] = offset + e, offset - e  # two codewords equidistant from `offset`
    x = torch.stack([codebook[5], codebook[20], codebook[17], offset, codebook[37] + 0.5])
    return x, codebook, torch.tensor([5, 20, 17, 2, 20])


def run(backend: str, x: torch.Tensor, codebook: torch.Tensor, blocks: dict | None = None):
    """`backend`'s search, the Triton kernel's on TRITON_DEVICE; results on the CPU."""
    if backend != "triton":
        return nearest_codeword(x, codebook, backend=backend)
    x, codebook = x.to(TRITON_DEVICE), codebook.to(TRITON_DEVICE)  # strides kept
    if blocks is None:
        indices, distances = nearest_codeword(x, codebook, backend="triton")
    else:
        from vqcodec.kernels.triton_nearest import nearest_codeword_triton

        indices, distances = nearest_codeword_triton(x, codebook, blocks=blocks)
    return indices.cpu(), distances.cpu()


@pytest.mark.parametrize("d", [12, 64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_exact_search_on_odd_shapes(backend, d):
    x, codebook = tie_free(1151, 1000, d, seed=d)
    want_index, want_distance, _ = exact_nearest(x, codebook)
    indices, distances = run(backend, x, codebook)
    assert indices.dtype == torch.int64 and distances.dtype == torch.float32
    assert torch.equal(indices, want_index)
    # ‖x‖² + ‖c‖² − 2x·c loses about eps·(‖x‖² + ‖c‖²) to cancellation.
    assert torch.allclose(distances.double(), want_distance, rtol=1e-5, atol=1e-5 * 4 * d)


@needs_triton
def test_triton_equals_torch_path_across_small_tiles():
    x, codebook = tie_free(203, 150, 40, seed=1)
    want_index, want_distance = nearest_codeword(x, codebook, backend="torch")
    indices, distances = run("triton", x, codebook, SMALL_BLOCKS)
    assert torch.equal(indices, want_index)
    assert torch.allclose(distances, want_distance, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("blocks", [None, SMALL_BLOCKS])
@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_return_lowest_index(backend, blocks):
    x, codebook, want = tied_codebook()
    indices, distances = run(backend, x, codebook, blocks)
    assert torch.equal(indices, want)
    assert torch.equal(distances[:3], torch.zeros(3))  # exact hits, never negative
    assert distances[3] == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", BACKENDS)
def test_half_precision_inputs(backend, dtype):
    x, codebook = tie_free(300, 257, 24, seed=7, dtype=dtype)
    want_index, want_distance, _ = exact_nearest(x, codebook)
    indices, distances = run(backend, x, codebook)
    assert torch.equal(indices, want_index)
    assert distances.dtype == torch.float32
    assert torch.allclose(distances.double(), want_distance, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_dtypes_and_strided_input(backend):
    x, codebook = tie_free(100, 64, 20, seed=2)
    want_index, _, _ = exact_nearest(x, codebook)
    strided = x.t().contiguous().t()  # same values, column-major
    assert torch.equal(run(backend, strided, codebook)[0], want_index)
    half_x = x.half()
    assert torch.equal(run(backend, half_x, codebook)[0], exact_nearest(half_x, codebook)[0])


@needs_triton
def test_autotune_configs_fit_gpu_dot_and_padded_d():
    from vqcodec.kernels.triton_nearest import _autotune_configs, _prune_configs

    configs = _autotune_configs()
    for config in configs:  # tl.dot on a GPU needs power-of-two tile sides of at least 16
        assert all(v >= 16 and v & (v - 1) == 0 for v in config.kwargs.values())
    narrow = _prune_configs(configs, {"D": 8})
    assert narrow and all(c.kwargs["BLOCK_D"] == 16 for c in narrow)
    assert _prune_configs(configs, {"D": 200}) == configs


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    indices, distances = run(backend, torch.empty(0, 12), torch.randn(10, 12))
    assert indices.shape == (0,) and indices.dtype == torch.int64
    assert distances.shape == (0,) and distances.dtype == torch.float32


def test_torch_path_chunks_agree_with_one_chunk():
    x, codebook = tie_free(101, 33, 9, seed=4)
    whole = nearest_codeword_torch(x, codebook, chunk_bytes=1 << 30)
    chunked = nearest_codeword_torch(x, codebook, chunk_bytes=4 * 33 * 7)  # 7 rows a chunk
    assert torch.equal(whole[0], chunked[0])
    # BLAS may sum in another order for another row count: equal up to fp32 rounding.
    assert torch.allclose(whole[1], chunked[1], rtol=1e-6, atol=1e-6)


def test_cpu_chunks_grow_with_threads_and_stay_bounded():
    cpu = torch.device("cpu")
    assert default_chunk_bytes(cpu, 1) == CPU_CHUNK_BYTES  # one thread: cache-sized chunks
    # Several threads: a large slab of work per thread in every parallel region.
    assert default_chunk_bytes(cpu, 2) == 2 * CPU_CHUNK_BYTES_PER_THREAD > CPU_CHUNK_BYTES
    assert default_chunk_bytes(cpu, 64) == GPU_CHUNK_BYTES  # never unbounded
    assert default_chunk_bytes(torch.device("meta"), 1) == GPU_CHUNK_BYTES


@pytest.mark.parametrize(
    ("x", "codebook", "match"),
    [
        (torch.randn(4, 8, 1), torch.randn(3, 8), r"\[N, D\]"),
        (torch.randn(4, 8), torch.randn(3, 7), "dimension mismatch"),
        (torch.randn(4, 0), torch.randn(3, 0), "D=0"),
        (torch.randn(4, 8), torch.randn(0, 8), "empty"),
        (torch.randn(4, 8).double(), torch.randn(3, 8), "float32/float16/bfloat16"),
        (torch.ones(4, 8, dtype=torch.int64), torch.randn(3, 8), "float32/float16/bfloat16"),
        (torch.randn(4, 8, device="meta"), torch.randn(3, 8), "meta"),
    ],
)
def test_bad_arguments_are_refused(x, codebook, match):
    with pytest.raises(ValueError, match=match):
        nearest_codeword(x, codebook)


def test_unknown_backend_and_non_tensor_are_refused():
    with pytest.raises(ValueError, match="backend must be one of"):
        nearest_codeword(torch.randn(2, 4), torch.randn(3, 4), backend="cuda")
    with pytest.raises(TypeError, match="torch tensors"):
        nearest_codeword([[0.0]], torch.randn(3, 1))


@needs_triton
def test_triton_backend_needs_cuda_or_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        nearest_codeword(torch.randn(2, 4), torch.randn(3, 4), backend="triton")
    # "auto" never needs Triton on CPU tensors.
    assert nearest_codeword(torch.eye(4), torch.eye(4))[0].tolist() == [0, 1, 2, 3]


def test_triton_backend_needs_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # makes triton unimportable
    with pytest.raises(RuntimeError, match="triton is not installed"):
        nearest_codeword(torch.randn(2, 4), torch.randn(3, 4), backend="triton")


@pytest.mark.parametrize(
    ("triton_version", "numpy_version", "usable"),
    [("3.6.0", "2.4.0", False), ("3.2.0", "2.5.2", False), ("3.6.0", "2.3.5", True), ("3.8.0", "2.4.6", True)],
)
def test_interpreter_is_refused_where_it_cannot_read_a_loop_bound(triton_version, numpy_version, usable):
    reason = dispatch._interpreter_unusable_reason(triton_version, numpy_version)
    assert (reason is None) == usable
    if not usable:
        assert triton_version in reason and numpy_version in reason and "triton>=3.8 or numpy<2.4" in reason


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_backend_on_cpu_says_why_the_interpreter_cannot_run(monkeypatch):
    import triton

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton, "__version__", "3.6.0")
    monkeypatch.setattr(dispatch.np, "__version__", "2.4.0")
    with pytest.raises(RuntimeError, match=r"Triton 3\.6\.0 fails under numpy 2\.4\.0"):
        nearest_codeword(torch.randn(2, 4), torch.randn(3, 4), backend="triton")


def test_package_imports_and_runs_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, vqcodec.model.quantizer\n"
        "from vqcodec.kernels import nearest_codeword\n"
        "print(nearest_codeword(torch.eye(3), torch.eye(3))[0].tolist())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 1, 2]"


def test_non_finite_inputs_are_refused_rather_than_matched_differently_per_backend():
    codebook = torch.randn(8, 4)
    for bad in (float("nan"), float("inf")):
        x = torch.randn(5, 4)
        x[2, 1] = bad
        with pytest.raises(ValueError, match="finite"):
            nearest_codeword(x, codebook, backend="torch")
        with pytest.raises(ValueError, match="finite"):
            nearest_codeword(torch.randn(5, 4), torch.where(torch.arange(8)[:, None] == 3, bad, codebook))


@needs_triton
@needs_cuda
def test_compiled_kernel_on_a_gpu_matches_exact_search():
    """The interpreter accepts code a GPU compiler rejects (e.g. `tl.dot` tiles under 16), so
    the compiled kernel is checked on a real GPU, in a process without TRITON_INTERPRET,
    against float64 search: odd N, K and D, fp32 and bf16, and the autotuned tiles."""
    code = (
        "import os, sys, torch\n"
        "import test_kernels as t  # the working directory is tests/\n"
        "os.environ.pop('TRITON_INTERPRET')  # set by that import if unset; the kernel module is not loaded yet\n"
        "from vqcodec.kernels import nearest_codeword\n"
        "bad = []\n"
        "for n, k, d, dtype in [(1151, 1024, 32, torch.float32), (1151, 1000, 12, torch.float32),\n"
        "                       (70000, 1024, 64, torch.float32), (1151, 1024, 32, torch.bfloat16)]:\n"
        "    x, codebook = t.tie_free(n, k, d, seed=n + k + d, dtype=dtype)\n"
        "    indices, distances = nearest_codeword(x.cuda(), codebook.cuda(), backend='triton')\n"
        "    expected, best, _ = t.exact_nearest(x, codebook)\n"
        "    close = torch.allclose(distances.cpu().double(), best, rtol=1e-3, atol=1e-3)\n"
        "    if not torch.equal(indices.cpu(), expected) or not close:\n"
        "        bad.append((n, k, d, str(dtype)))\n"
        "print(bad)\n"
    )
    # Run from tests/, not the repository root: the root's vqcodec/ folder lacks kernels/, which
    # only an install (editable, or benchmarks/gpu_run.sh's layout) places inside the package.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=os.path.dirname(os.path.abspath(__file__))
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
