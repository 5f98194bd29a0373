"""The training loop: resumable, logged, single-process or DistributedDataParallel (torchrun)."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from vqcodec.metrics import psnr
from vqcodec.model import VQCodec

from .checkpoint import export_weights, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import CenterCrops, RandomCrops, list_images, split_files
from .logger import RunLogger
from .losses import reconstruction_loss

LATEST = "latest.pt"


class StepSampler(Sampler[int]):
    """Sample ids `start, start+1, …` interleaved over ranks: a resumed run continues the very
    sequence of crops an uninterrupted run would have seen."""

    def __init__(self, start: int, rank: int, world: int, count: int) -> None:
        self.start, self.rank, self.world, self.count = start, rank, world, count

    def __iter__(self):
        return iter(range(self.start + self.rank, self.start + self.count * self.world, self.world))

    def __len__(self) -> int:
        return self.count


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio`·lr at `steps`."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@torch.no_grad()
def validate(model: VQCodec, images: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Mean PSNR on held-out crops for every stage count, plus codebook usage per stage."""
    model.eval()
    stages = model.config.stages
    scores = {s: [] for s in range(1, stages + 1)}
    used = [torch.zeros(model.config.codebook_size, dtype=torch.bool) for _ in range(stages)]
    for batch in images.split(batch_size):
        indices = model.encode_indices(batch)
        for s in range(stages):
            used[s][indices[:, s].flatten().cpu()] = True
        for s in range(1, stages + 1):
            scores[s].append(psnr(model.decode_indices(indices[:, :s]), batch))
    model.train()
    metrics = {f"val/psnr_stages{s}": torch.cat(v).mean().item() for s, v in scores.items()}
    metrics.update({f"val/usage_stage{s}": u.float().mean().item() for s, u in enumerate(used)})
    return metrics


def _codebook_metrics(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Perplexity and share of codes used in this batch, per stage (`indices` `[B,S,h,w]`)."""
    metrics = {}
    for s in range(indices.shape[1]):
        counts = torch.bincount(indices[:, s].flatten(), minlength=codebook_size).float()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        metrics[f"codebook/perplexity_stage{s}"] = entropy.exp().item()
        metrics[f"codebook/batch_usage_stage{s}"] = (counts > 0).float().mean().item()
    return metrics


def train_vqvae(config: TrainConfig, resume: bool) -> Path:
    """Stage 1: encoder, residual codebooks and fidelity decoder. Returns the weights path."""
    rank, world = _distributed()
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    torch.manual_seed(config.seed)
    model = VQCodec(config.model).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    step = 0
    if resume and (out_dir / LATEST).exists():
        state = load_checkpoint(out_dir / LATEST)
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        model.quantizer.generator.set_state(state["quantizer_rng"])
        step = state["step"]
    train_files, val_files = split_files(list_images(config.data_dir), config.validation_images)
    dataset = RandomCrops(train_files, config.crop)
    val_images = torch.stack(list(CenterCrops(val_files, config.validation_crop))).to(device) if val_files else None
    remaining = config.steps - step
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=StepSampler(step * config.batch_size * world, rank, world, max(0, remaining) * config.batch_size),
        num_workers=config.workers,
        drop_last=True,
    )
    wrapped = DistributedDataParallel(model) if world > 1 else model
    logger = RunLogger(out_dir, enabled=rank == 0)
    if rank == 0:
        (out_dir / "config.json").write_text(config.to_json())
    progress = tqdm(total=config.steps, initial=step, disable=rank != 0, desc="vqvae", unit="step", dynamic_ncols=True)
    started, images_seen = time.time(), 0
    for batch in loader:
        batch = batch.to(device).contiguous(memory_format=torch.channels_last)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        dropout = torch.Generator().manual_seed(config.seed * 1_000_003 + step * world + rank)
        keep = torch.randint(1, config.model.stages + 1, (batch.shape[0],), generator=dropout).to(device)
        out = wrapped(batch, keep)
        terms = reconstruction_loss(out["reconstruction"], batch, config.ms_ssim_weight, config.ms_ssim_scales)
        loss = terms["loss"] + config.commit_weight * out["commit_loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        images_seen += batch.shape[0] * world
        progress.update(1)
        if step % config.log_every == 0:
            scalars = {f"train/{k}": v.item() for k, v in terms.items()}
            scalars["train/commit"] = out["commit_loss"].item()
            scalars["train/lr"] = learning_rate(config, step - 1)
            scalars["train/images_per_s"] = images_seen / (time.time() - started)
            scalars.update(_codebook_metrics(out["indices"], config.model.codebook_size))
            logger.scalars(step, scalars)
            progress.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{scalars['train/images_per_s']:.1f}")
        if rank == 0 and val_images is not None and (step % config.validate_every == 0 or step == config.steps):
            logger.scalars(step, validate(model, val_images, config.batch_size))
            logger.images(step, "val/reconstruction", val_images[:4], model.decode_indices(model.encode_indices(val_images[:4])))
        if rank == 0 and (step % config.checkpoint_every == 0 or step == config.steps):
            save_checkpoint(out_dir / LATEST, {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "quantizer_rng": model.quantizer.generator.get_state(),
                "step": step,
                "train_config": config.to_json(),
            })
            export_weights(model, out_dir / "weights.safetensors", f"vqvae step {step}")
    progress.close()
    logger.close()
    return out_dir / "weights.safetensors"
