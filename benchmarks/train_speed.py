"""Training throughput (images/s at 256×256) and design-choice ratios measured in one run.

Variants run interleaved, round by round, so that load from other processes on the machine
hits every variant alike; each ratio is taken within a round and the median over rounds is
reported. Batches are synthetic (seeded uniform noise): this measures the model step
(forward, backward, optimizer), not data loading.

    python benchmarks/train_speed.py --out benchmarks/results/train_speed
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vqcodec.model import CodecConfig, VQCodec
from vqcodec.model.discriminator import PatchDiscriminator
from vqcodec.train.config import TrainConfig
from vqcodec.train.gan import GanParts, add_realism_decoder, freeze_all_but_realism, gan_step
from vqcodec.train.loop import vqvae_step

Step = Callable[[], None]


def vqvae_variant(config: TrainConfig, batch: torch.Tensor, channels_last: bool = True, compile_model: bool = False) -> Step:
    """A closure that runs one stage-1 training step on `batch`."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = VQCodec(config.model).to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = batch.contiguous(memory_format=memory_format)
    keep = torch.full((batch.shape[0],), config.model.stages)
    forward = torch.compile(model) if compile_model else model
    return lambda: vqvae_step(forward, optimizer, batch, keep, config)


def vqgan_variant(config: TrainConfig, batch: torch.Tensor) -> Step:
    """A closure that runs one stage-2 step (realism decoder, then discriminator) on `batch`."""
    model = add_realism_decoder(VQCodec(config.model)).to(memory_format=torch.channels_last)
    with torch.no_grad():
        model.train()(batch)  # initialise the codebooks as stage 1 would
    freeze_all_but_realism(model)
    disc = PatchDiscriminator(config.disc_width, config.disc_layers).to(memory_format=torch.channels_last)
    parts = GanParts(
        model,
        model.decoders["realism"],
        disc,
        disc,
        torch.optim.AdamW(model.decoders["realism"].parameters(), lr=1e-4),
        torch.optim.AdamW(disc.parameters(), lr=1e-4),
    )
    keep = torch.full((batch.shape[0],), config.model.stages)
    batch = batch.contiguous(memory_format=torch.channels_last)
    return lambda: gan_step(parts, batch, keep, config, adversarial=True)


def build_variants(args: argparse.Namespace, batch: torch.Tensor) -> dict[str, Step]:
    base = TrainConfig(ms_ssim_scales=3)
    narrow = dataclasses.replace(base, model=dataclasses.replace(base.model, width_fine=32, width_coarse=64))
    variants = {
        "vqvae (channels_last, eager)": vqvae_variant(base, batch),
        "vqvae contiguous NCHW": vqvae_variant(base, batch, channels_last=False),
        "vqvae half width (32/64)": vqvae_variant(narrow, batch),
        "vqgan step (realism decoder + PatchGAN)": vqgan_variant(base, batch),
    }
    if args.compile:
        variants["vqvae torch.compile"] = vqvae_variant(base, batch, compile_model=True)
    return variants


def timed(step: Step, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        step()
    return time.perf_counter() - started


def measure(variants: dict[str, Step], rounds: int, steps: int, batch_size: int) -> tuple[dict, dict]:
    """Warm-up seconds per variant (first step; includes compilation) and images/s per round."""
    warmup = {name: timed(step, 1) for name, step in variants.items()}
    rates = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            rates[name].append(batch_size * steps / timed(step, steps))
    return warmup, rates


def summarise(rates: dict[str, list[float]], warmup: dict[str, float]) -> dict:
    baseline = next(iter(rates))
    summary = {}
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, rates[baseline])]
        summary[name] = {
            "images_per_s_per_round": values,
            "images_per_s_median": statistics.median(values),
            "ratio_to_baseline_median": statistics.median(ratios),
            "ratio_to_baseline_per_round": ratios,
            "first_step_seconds": warmup[name],
        }
    return summary


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    medians = [summary[n]["images_per_s_median"] for n in names]
    lows = [m - min(summary[n]["images_per_s_per_round"]) for n, m in zip(names, medians)]
    highs = [max(summary[n]["images_per_s_per_round"]) - m for n, m in zip(names, medians)]
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(names) + 1.5))
    ax.barh(names[::-1], medians[::-1], xerr=[lows[::-1], highs[::-1]], color="#4c72b0")
    for y, name in enumerate(names[::-1]):
        ax.text(summary[name]["images_per_s_median"], y, f"  ×{summary[name]['ratio_to_baseline_median']:.2f}", va="center")
    ax.set_xlabel("training images/s at 256×256 (median over rounds; bars: min–max)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_speed"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = torch.rand(args.batch, 3, args.size, args.size)
    started = time.perf_counter()
    warmup, rates = measure(build_variants(args, batch), args.rounds, args.steps, args.batch)
    result = {
        "what": "training throughput, images/s, synthetic batches (model step only, no data loading)",
        "method": (
            f"{args.rounds} interleaved rounds of {args.steps} timed steps per variant after one warm-up "
            "step each; ratios are taken within a round against the first variant and the median is "
            "reported, because other processes share the CPU"
        ),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": "cpu",
        },
        "settings": {**vars(args), "out": str(args.out), "model": dataclasses.asdict(CodecConfig())},
        "variants": summarise(rates, warmup),
        "total_seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_speed.json").write_text(json.dumps(result, indent=1))
    plot(
        result["variants"],
        args.out / "train_speed.png",
        f"vqcodec training speed, {args.threads} thread(s), batch {args.batch}, CPU shared with other jobs",
    )
    for name, entry in result["variants"].items():
        print(
            f"{name:42s} {entry['images_per_s_median']:7.2f} img/s  ×{entry['ratio_to_baseline_median']:.2f}"
            f"  first step {entry['first_step_seconds']:.1f}s"
        )


if __name__ == "__main__":
    main()
