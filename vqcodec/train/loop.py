"""The training machinery both phases share (processes, device, data, schedule, logging,
validation, checkpoint cadence) and stage 1, the VQ-VAE loop. Resumable; single-process or
DistributedDataParallel under torchrun."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from vqcodec.entropy.prior_file import load_prior_file
from vqcodec.metrics import max_ms_ssim_scales, ms_ssim, psnr
from vqcodec.model import VQCodec

from .checkpoint import restore_run, save_run
from .config import TrainConfig
from .data import CenterCrops, RandomCrops, ResidentCrops, list_images, split_files
from .logger import RunLogger
from .losses import reconstruction_loss
from .rate import RateTerm
from .schedule import learning_rate, set_learning_rate
from .warm_start import grown, load_vqvae


class StepSampler(Sampler[int]):
    """Sample ids `start, start+1, …` interleaved over ranks, without end (the run stops at
    its step count, which a time budget may set only once the run is under way): a resumed
    run continues the very sequence of crops an uninterrupted run would have seen."""

    def __init__(self, start: int, rank: int, world: int) -> None:
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self):
        return itertools.count(self.start + self.rank, self.world)


# Share of the time left that a budgeted run's schedule fills; the rest covers validation,
# checkpoints and speed changes, and the budget's hard stop catches any overrun.
BUDGET_SHARE = 0.9


clock = time.monotonic  # the time budget's clock (tests replace it)


def budget_steps(step: int, steps_per_s: float, seconds_left: float) -> int:
    """Total steps of a run at `step`, training `steps_per_s`, with `seconds_left`: the
    schedule ends after BUDGET_SHARE of that time (at least one step more)."""
    return step + max(1, int(BUDGET_SHARE * seconds_left * steps_per_s))


def pick_device(name: str) -> torch.device:
    """`name`, with "auto" meaning CUDA when present. Under torchrun each process takes the
    GPU of its LOCAL_RANK, so ranks never share a device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"device={name} would put every torchrun process on one GPU: pass device=cuda or auto")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def channels_last_on(module: ModuleT, device: torch.device) -> ModuleT:
    """`module` moved to `device`, its weights in channels_last layout, as the batches are."""
    # Module.to takes memory_format (it is documented), but torch's overloads of it leave it out.
    return module.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere, so CPU training is plain fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun (NCCL for
    GPUs, gloo for CPU tensors, also on a machine that has GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode inside, then every submodule's own mode back (the GAN phase keeps frozen parts
    in eval mode while one decoder trains, so a blanket `model.train()` would be wrong)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@torch.no_grad()
def validate(model: VQCodec, images: torch.Tensor, batch_size: int, decoder: str = "fidelity") -> dict[str, float]:
    """Mean PSNR and MS-SSIM of `decoder` on held-out crops `[N,3,H,W]` for every stage count,
    plus codebook usage per stage."""
    stages = model.config.stages
    scales = max_ms_ssim_scales(*images.shape[-2:])
    scores: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {s: ([], []) for s in range(1, stages + 1)}
    used = [torch.zeros(model.config.codebook_size, dtype=torch.bool) for _ in range(stages)]
    with evaluating(model):
        for batch in images.split(batch_size):
            indices = model.encode_indices(batch)
            for s in range(stages):
                used[s][indices[:, s].flatten().cpu()] = True
            for s in range(1, stages + 1):
                decoded = model.decode_indices(indices[:, :s], decoder)
                scores[s][0].append(psnr(decoded, batch))
                if scales:
                    scores[s][1].append(ms_ssim(decoded, batch, scales))
    metrics = {f"val/psnr_stages{s}": torch.cat(p).mean().item() for s, (p, _) in scores.items()}
    if scales:
        metrics.update({f"val/ms_ssim_stages{s}": torch.cat(m).mean().item() for s, (_, m) in scores.items()})
    metrics.update({f"val/usage_stage{s}": u.float().mean().item() for s, u in enumerate(used)})
    return metrics


def codebook_metrics(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Perplexity and share of codes used in this batch, per stage (`indices` `[B,S,h,w]`)."""
    metrics = {}
    for s in range(indices.shape[1]):
        counts = torch.bincount(indices[:, s].flatten(), minlength=codebook_size).float()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        metrics[f"codebook/perplexity_stage{s}"] = entropy.exp().item()
        metrics[f"codebook/batch_usage_stage{s}"] = (counts > 0).float().mean().item()
    return metrics


class TrainingRun:
    """What both phases share: process group, device, seeded RNG, the data stream, stage
    dropout, logging with a progress bar, validation and checkpoint cadence."""

    def __init__(self, config: TrainConfig) -> None:
        self._budget_start = clock()  # the budget counts device set-up and data loading too
        self.config = config
        self.device = pick_device(config.device)  # before the process group: NCCL binds to it
        self.rank, self.world = _distributed(self.device)
        self.is_main = self.rank == 0
        self.out_dir = Path(config.out_dir)
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.val_images: torch.Tensor | None = None
        self.logger = RunLogger(self.out_dir, enabled=False)
        self.progress: tqdm | None = None
        self._timing: tuple[int, float] | None = None  # (step, time) where speed timing began
        self.stopped = False  # the time budget ran out before config.steps

    def _agreed(self, value: float, op: dist.ReduceOp.RedOpType) -> float:
        """`value` reduced over ranks with `op`, so that every rank takes the same decision."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=op)
        return tensor.item()

    def _seconds_left(self, now: float) -> float:
        """Of the time budget, at clock reading `now` (negative once it is spent)."""
        return self.config.time_budget * 60 - (now - self._budget_start)

    def _write_config(self) -> None:
        if self.is_main:
            (self.out_dir / "config.json").write_text(self.config.to_json())

    def _fit_schedule_to_budget(self, step: int) -> None:
        """With `fit_steps_to_budget`: time warmup/4 steps, starting once warmup/4 steps are
        done (in a fresh run, start-up and compilation are behind by then; a resumed run starts
        timing at its first step), then set `config.steps` so the schedule ends in time, and
        clear the flag so a resumed run keeps that count. Both are set in `self.config`.

        A fresh run sizes at warmup/2. The learning rate of the warm-up does not depend on
        `steps`, so a run sized within it follows exactly the schedule of a run told that
        step count from the start; one resumed too late to size within it is told so."""
        config = self.config
        window = config.warmup_steps // 4
        if not config.fit_steps_to_budget or step < window:
            return
        if self._timing is None:
            self._timing = (step, clock())
            return
        if step - self._timing[0] < window:
            return
        now = clock()
        steps_per_s = (step - self._timing[0]) / max(now - self._timing[1], 1e-9)
        config.steps = int(self._agreed(budget_steps(step, steps_per_s, self._seconds_left(now)), dist.ReduceOp.MIN))
        config.fit_steps_to_budget = False
        self._write_config()
        assert self.progress is not None
        self.progress.total = config.steps
        self.progress.refresh()
        if self.is_main and step > config.warmup_steps:
            self.progress.write(
                f"schedule sized at step {step}, after the warm-up: the steps before it "
                "followed the schedule of the provisional step count"
            )
        if self.is_main and config.steps < config.warmup_steps:
            self.progress.write(
                f"the time budget leaves {config.steps} steps, fewer than the {config.warmup_steps} "
                "warm-up steps: the learning rate will not reach its peak or decay"
            )

    def _out_of_time(self, step: int) -> bool:
        """Whether the budget is spent, agreed over ranks. Under DDP this is asked only every
        `log_every` steps: the agreement syncs the host with the devices."""
        if not self.config.time_budget or (self.world > 1 and step % self.config.log_every):
            return False
        return bool(self._agreed(float(self._seconds_left(clock()) < 0), dist.ReduceOp.MAX))

    def wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel when running under torchrun, the module itself otherwise."""
        if self.world == 1:
            return module
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def batches(self, step: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(step, batch) from `step` until `config.steps` (which a time budget may set) or the
        budget's stop; batch `[B,3,crop,crop]` float in [0,1],
        channels_last on the device. Sets up validation crops, logger and progress bar."""
        config = self.config
        train_files, val_files = split_files(list_images(config.data_dir), config.validation_images)
        if val_files:
            val_crops = CenterCrops(val_files, config.validation_crop)
            self.val_images = torch.stack([val_crops[i] for i in range(len(val_crops))]).to(self.device)
        crops = self._crops(train_files, step)
        self.logger = RunLogger(self.out_dir, enabled=self.is_main, start_step=step)
        self._write_config()
        self.progress = tqdm(
            total=config.steps, initial=step, disable=not self.is_main, desc=config.phase, unit="step", dynamic_ncols=True
        )
        self._started, self._images_seen = time.time(), 0
        try:
            for batch in crops:
                if step >= config.steps or self.stopped:
                    break
                yield step, batch
                step += 1
                self._images_seen += batch.shape[0] * self.world
                self.progress.update(1)
        finally:
            self.progress.close()
            self.logger.close()

    def _crops(self, files: list[Path], step: int) -> Iterator[torch.Tensor]:
        """Training batches from `step` on, without end, on the device and channels_last:
        cut on the device from resident images (`resident_data`), or by DataLoader workers."""
        config = self.config
        if config.resident_data:
            images = ResidentCrops(files, config.crop, self.device)
            return (
                images.batch(config.batch_size, self.step_generator(s, stream=2, device=self.device))
                for s in itertools.count(step)
            )
        sampler = StepSampler(step * config.batch_size * self.world, self.rank, self.world)
        loader = DataLoader(
            RandomCrops(files, config.crop),
            batch_size=config.batch_size,
            sampler=sampler,
            num_workers=config.workers,
            drop_last=True,
        )
        return (batch.to(self.device).contiguous(memory_format=torch.channels_last) for batch in loader)

    def step_generator(self, step: int, stream: int = 0, device: torch.device | None = None) -> torch.Generator:
        """A generator on `device` (default: the CPU) seeded by (seed, step, rank, stream), so a
        resumed run draws the same; each use within a step takes its own stream (shifted far past
        any seed·step·rank value)."""
        seed = self.config.seed * 1_000_003 + step * self.world + self.rank + (stream << 40)
        return torch.Generator(device=device or "cpu").manual_seed(seed)

    def stage_dropout(self, step: int, batch_size: int) -> torch.Tensor:
        """`[B]` stages each sample keeps, drawn uniformly or by `stage_weights`."""
        generator = self.step_generator(step)
        if self.config.stage_weights:
            odds = torch.tensor(self.config.stage_weights, dtype=torch.float64)
            keep = torch.multinomial(odds, batch_size, replacement=True, generator=generator) + 1
        else:
            keep = torch.randint(1, self.config.model.stages + 1, (batch_size,), generator=generator)
        return keep.to(self.device)

    def end_step(
        self, step: int, scalars: Callable[[], dict[str, float]], model: VQCodec, decoder: str, save: Callable[[], None]
    ) -> None:
        """After `step` optimizer steps: log `scalars()` every `log_every`, validate `decoder`
        and call `save` on their cadences and at the last step (rank 0 only). With a time
        budget: end the run when it is spent, and size the schedule first if asked to."""
        config = self.config
        assert self.progress is not None, "end_step runs inside batches(), which sets up the progress bar"
        self._fit_schedule_to_budget(step)
        self.stopped = step < config.steps and self._out_of_time(step)
        last = step == config.steps or self.stopped
        if step % config.log_every == 0:
            values = scalars()
            values["train/images_per_s"] = self._images_seen / (time.time() - self._started)
            self.logger.scalars(step, values)
            self.progress.set_postfix(loss=f"{values['train/loss']:.4f}", img_s=f"{values['train/images_per_s']:.1f}")
        if not self.is_main:
            return
        if self.val_images is not None and (step % config.validate_every == 0 or last):
            self.logger.scalars(step, validate(model, self.val_images, config.batch_size, decoder))
            shown = self.val_images[:4]
            with evaluating(model):
                decoded = model.decode_indices(model.encode_indices(shown), decoder)
            self.logger.images(step, f"val/{decoder}", shown, decoded)
        if step % config.checkpoint_every == 0 or last:
            save()
        if self.stopped:
            self.progress.write(
                f"time budget of {config.time_budget:g} min spent at step {step} of "
                f"{config.steps}: checkpoint saved, --resume continues the run"
            )


def vqvae_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    keep: torch.Tensor,
    config: TrainConfig,
    rate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimizer step of stage 1 on `batch` `[B,3,H,W]` with per-sample stage counts `keep`.

    `rate(latent, indices)`, when given, prices the batch in bits per pixel (`RateTerm`).
    Returns the detached loss terms (`loss` is the reconstruction loss, `total` adds the
    weighted commitment loss and, with `rate`, `rate_weight`·`rate_bpp`) and the indices
    `[B,S,h,w]` the batch was quantized to.
    """
    with autocast(batch.device):
        out = model(batch, keep)
    terms = reconstruction_loss(out["reconstruction"].float(), batch, config.ms_ssim_weight, config.ms_ssim_scales)
    terms["commit"] = out["commit_loss"].float()
    terms["total"] = terms["loss"] + config.commit_weight * terms["commit"]
    if rate is not None:
        terms["rate_bpp"] = rate(out["latent"].float(), out["indices"])
        terms["total"] = terms["total"] + config.rate_weight * terms["rate_bpp"]
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    terms["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}, out["indices"]


def train_vqvae(config: TrainConfig, state: dict | None = None) -> VQCodec:
    """Stage 1: encoder, residual codebooks and fidelity decoder, from scratch, from the
    weights `config.init_from` (grown where `config.model` is larger or has new codebooks:
    `warm_start.grown`; a fresh optimizer and schedule) or from the checkpoint `state`
    (`checkpoint.resume_run`). Returns the trained model; rank 0 writes
    `latest.pt` and `weights.safetensors` in `config.out_dir`."""
    run = TrainingRun(config)
    initial = grown(load_vqvae(config.init_from), config.model) if config.init_from and not state else VQCodec(config.model)
    model = channels_last_on(initial, run.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    start = restore_run(state, model, optimizer, config.weight_decay) if state else 0
    rate_term = RateTerm(load_prior_file(config.rate_prior), config.model, run.device) if config.rate_weight > 0 else None
    wrapped = run.wrap(model)
    for step, batch in run.batches(start):
        set_learning_rate(optimizer, learning_rate(config, step))
        keep = run.stage_dropout(step, batch.shape[0])
        rate = (
            None
            if rate_term is None
            else functools.partial(rate_term, quantizer=model.quantizer, keep=keep, generator=run.step_generator(step, stream=1))
        )
        terms, indices = vqvae_step(wrapped, optimizer, batch, keep, config, rate)
        run.end_step(
            step + 1,
            functools.partial(_vqvae_scalars, terms, indices, config, step),
            model,
            "fidelity",
            functools.partial(save_run, run.out_dir, config, step + 1, model, optimizer),
        )
    return model


def _vqvae_scalars(terms: dict[str, torch.Tensor], indices: torch.Tensor, config: TrainConfig, step: int) -> dict[str, float]:
    """What stage 1 logs for `step`: the loss terms, the learning rate (read when logged, after
    the schedule may have been sized) and the batch's codebook use."""
    values = {f"train/{k}": v.item() for k, v in terms.items()}
    values["train/lr"] = learning_rate(config, step)
    return {**values, **codebook_metrics(indices, config.model.codebook_size)}
