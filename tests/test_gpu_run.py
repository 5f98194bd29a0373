"""The GPU job (benchmarks/gpu_run.sh) end to end on the CPU: a tiny model, a few seconds per
phase, a packed data set made here. Its outputs must fit what a job may bring back, and a
failing phase must not stop the ones after it."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqcodec.model import CodecConfig, VQCodec
from vqcodec.train.checkpoint import export_weights
from vqcodec.train.pack import pack_training_set
from vqcodec.zoo import load_codec_file

ROOT = Path(__file__).resolve().parent.parent
MAX_FILES, MAX_BYTES = 8, 16 * 2**20
pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("bash", "timeout", "awk", "realpath")), reason="needs bash and coreutils"
)
TINY = (
    "threads=1 model.width_fine=16 model.width_coarse=32 model.encoder_blocks=[1,1] model.decoder_blocks=[1,1] "
    "model.latent_dim=8 model.codebook_size=16 crop=32 batch_size=4 warmup_steps=20 validation_images=2 "
    "validation_crop=32 log_every=5 disc_start=5 disc_width=8 disc_layers=2 ms_ssim_scales=2"
)


def packed_images(root: Path) -> Path:
    """Six smooth noisy 96×72 photos-to-be, packed as the job's data would be."""
    source = root / "photos"
    source.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:72, 0:96]
    for i in range(6):
        base = np.stack([x * (i + 1) % 256, y * (7 - i) * 3 % 256, (x + y) * 2 % 256], axis=-1)
        Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)).save(source / f"{i}.png")
    pack_training_set(source, root / "packed", short_side=64)
    return root / "packed"


def smaller_model(root: Path) -> Path:
    """Weights for the VQ-VAE phase to grow from, as the job grows the shipped model: half
    TINY's widths, smaller codebooks, fewer stages."""
    config = CodecConfig(
        width_fine=8, width_coarse=16, encoder_blocks=(1, 1), decoder_blocks=(1, 1), latent_dim=8, codebook_size=8, stages=2
    )
    export_weights(VQCodec(config), root / "smaller.safetensors", "a model for the dry run to grow from")
    return root / "smaller.safetensors"


def start_up_seconds() -> float:
    """How long a training process takes to start here: every phase pays it at least once."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, vqcodec.train.loop"], check=True)
    return time.perf_counter() - start


def run_job(root: Path, **settings: str) -> tuple[subprocess.CompletedProcess, Path, int]:
    """The job on the CPU, its time settings scaled to how fast processes start here (about
    a minute in all on an idle machine); (process, output folder, the job's seconds)."""
    (root / "wheels").mkdir()  # nothing to install: this environment has every package
    out = root / "out"
    unit = max(2.0, start_up_seconds())
    seconds = {
        "JOB_SECONDS": 24 * unit + 20,
        "GAN_SECONDS": 4 * unit + 4,
        "TAIL_SECONDS": 3 * unit + 2,
        "OUTPUT_SECONDS": 4 + unit,
    }
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        "GPU_DEVICE": "cpu",
        "GPU_WHEELS": str(root / "wheels"),
        "GPU_STAGES": "3",
        "GPU_INIT": str(smaller_model(root)),
        "GPU_ARGS": TINY,
        "KERNEL_CASES": "2048,64,16",
        "OMP_NUM_THREADS": "1",
        **{k: str(round(v)) for k, v in seconds.items()},
        **settings,
    }
    job = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds["JOB_SECONDS"] + 60,
    )
    return job, out, round(seconds["JOB_SECONDS"])


def assert_within_limits(out: Path) -> list[Path]:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) <= MAX_FILES
    assert all(p.stat().st_size <= MAX_BYTES for p in files)
    return files


def test_dry_run_writes_every_output_within_the_limits_and_in_time(tmp_path):
    job, out, seconds = run_job(tmp_path, GPU_DATA=str(packed_images(tmp_path)))
    log = (out / "job.log").read_text()
    assert job.returncode == 0, log[-3000:]
    names = [p.name for p in assert_within_limits(out)]
    assert names == ["job.log", "kernel.json", "runs-logs.tar.gz", "weights.safetensors"]
    for phase in ("kernel-tests", "kernel-bench", "vqvae", "vqgan"):
        assert f"  {phase}: ok in" in log
    assert "kernel benchmark on cpu: times the chunked torch path" in log
    kernel = json.loads((out / "kernel.json").read_text())
    assert [(c["N"], c["K"], c["D"]) for c in kernel["cases"]] == [(2048, 64, 16)]
    assert "speedup_vs_fastest" in kernel["cases"][0]
    with tarfile.open(out / "runs-logs.tar.gz") as logs:
        config = json.load(logs.extractfile("vqvae/config.json"))
        rows = [json.loads(line) for line in logs.extractfile("vqvae/metrics.jsonl").read().splitlines()]
    assert config["resident_data"] and config["model"]["stages"] == 3 and config["model"]["width_fine"] == 16
    assert config["init_from"] == str(tmp_path / "smaller.safetensors")
    # Validated at the end, whether the sized schedule or the timer ended the run.
    assert "val/psnr_stages3" in rows[-1] and 20 < rows[-1]["step"] <= config["steps"]
    codec = load_codec_file(out / "weights.safetensors")
    assert sorted(codec.decoders) == ["fidelity", "realism"]
    summary = log[log.index("=== summary after") :]
    assert int(summary.split()[3].rstrip("s")) <= seconds


def test_a_failing_phase_does_not_stop_the_later_ones(tmp_path):
    job, out, _ = run_job(tmp_path, GPU_DATA=str(tmp_path / "missing"), KERNEL_CASES="not-a-case", KERNEL_TEST_SECONDS="0")
    log = (out / "job.log").read_text()
    assert job.returncode == 1
    assert "kernel-tests: skipped, no time left" in log
    assert "kernel-bench: failed" in log and "vqvae: failed" in log  # the VQ-VAE ran after the benchmark failed
    assert "vqgan: skipped, no VQ-VAE checkpoint" in log
    assert [p.name for p in assert_within_limits(out)] == ["job.log"]
