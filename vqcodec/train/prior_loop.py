"""Training of the context prior on token grids of a frozen codec: masked-token batches, the
training loop (resumable, logged) and the bits it scores; the token cache is `token_cache`,
the counted tables `prior_tables`, the command `commands.train_prior_command`.

The codec encodes every training image once; the grids are cached (keyed by the codec's
weights hash), so epochs cost only the prior's own compute. The grids hold the nearest
codewords, or, with a search prior, the indices `vqcodec encode` would write against it
(`vqcodec.entropy.rdo`): a prior then learns the statistics of the files it will code.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import torch
from tqdm import tqdm

from vqcodec.entropy.context import ContextPrior, group_map
from vqcodec.entropy.prior_file import save_prior_file
from vqcodec.zoo import file_sha256

from .checkpoint import load_checkpoint, save_checkpoint
from .config import PriorTrainConfig
from .data import list_images, split_files
from .logger import RunLogger
from .prior_tables import fit_neighbour_tables, fit_transitions
from .schedule import learning_rate, set_learning_rate
from .token_cache import load_or_build_cache

CACHE_FILE = "tokens.safetensors"
LATEST = "prior_latest.pt"


# Stages 1 and 2 in five groups, the first only 1/16 of the grid, so most tokens see known
# neighbours; later stages in one group: their same-stage neighbours tell almost nothing
# (experiments/token-context/token_context.py) and their pair tables, fitted on training grids, overfit, so
# held-out bits rise with them; one group also decodes in one pass.
DEFAULT_SCHEDULE = ("pyramid", "pyramid", "all")


def sample_masks(rng: np.random.Generator, config: PriorTrainConfig, stage: int) -> tuple[np.ndarray, np.ndarray]:
    """(known, predict) `[crop, crop]` bools for the target stage: either the coding schedule
    (groups before a random group are known) or a MaskGIT random mask (cosine ratio)."""
    n = config.crop
    if rng.random() < config.schedule_mask_share:
        groups = group_map(config.prior.schedule[stage], n, n)
        known = groups < rng.integers(int(groups.max()) + 1)
    else:
        ratio = math.cos(0.5 * math.pi * rng.random())
        known = rng.random((n, n)) >= ratio
    if known.all():
        known[rng.integers(n), rng.integers(n)] = False
    return known, ~known


def make_batch(grids: list[np.ndarray], config: PriorTrainConfig, step: int) -> dict[str, torch.Tensor]:
    """A batch of random crops with coding-style known sets: stages before the target stage
    known everywhere, the target stage partly, later stages unknown. Seeded by step."""
    rng = np.random.default_rng([config.seed, step])
    stages, n = config.prior.stages, config.crop
    tokens = np.zeros((config.batch_size, stages, n, n), dtype=np.int64)
    known = np.zeros(tokens.shape, dtype=bool)
    predict = np.zeros((config.batch_size, n, n), dtype=bool)
    stage = rng.integers(stages, size=config.batch_size)
    for b in range(config.batch_size):
        grid = grids[rng.integers(len(grids))]
        top, left = rng.integers(grid.shape[1] - n + 1), rng.integers(grid.shape[2] - n + 1)
        tokens[b] = grid[:stages, top : top + n, left : left + n]
        known[b, : stage[b]] = True
        known[b, stage[b]], predict[b] = sample_masks(rng, config, int(stage[b]))
    return {
        "tokens": torch.from_numpy(tokens),
        "known": torch.from_numpy(known),
        "stage": torch.from_numpy(stage),
        "predict": torch.from_numpy(predict),
    }


@torch.no_grad()
def coding_bits(prior: ContextPrior, grids: list[np.ndarray]) -> np.ndarray:
    """`[S]` bits per index of each stage under the integer coding path (ideal code length)."""
    was_training = prior.training
    prior.eval()
    bits, counts = np.zeros(prior.config.stages), np.zeros(prior.config.stages)
    for grid in grids:
        tokens = grid[: prior.config.stages].astype(np.int64)
        known = np.zeros(tokens.shape, dtype=bool)
        for stage, mask in prior.groups(tokens.shape[0], *tokens.shape[1:]):
            freq = prior.frequencies(tokens, known, stage, mask)
            chosen = freq[np.arange(freq.shape[0]), tokens[stage][mask]]
            bits[stage] -= np.log2(chosen / freq.sum(axis=1)).sum()
            counts[stage] += mask.sum()
            known[stage] |= mask
    prior.train(was_training)
    return bits / counts


def static_bits(train: list[np.ndarray], validation: list[np.ndarray], stages: int, k: int) -> np.ndarray:
    """`[S]` bits per index of validation grids under order-0 per-stage counts of the training grids."""
    out = np.zeros(stages)
    for s in range(stages):
        counts = np.sum([np.bincount(g[s].reshape(-1), minlength=k) for g in train], axis=0).astype(np.float64) + 0.5
        symbols = np.concatenate([g[s].reshape(-1) for g in validation])
        out[s] = -np.log2(counts[symbols] / counts.sum()).mean()
    return out


def _report(logger: RunLogger, step: int, context: np.ndarray, static: np.ndarray) -> None:
    values = {f"val/bits_stage{s}": float(b) for s, b in enumerate(context)}
    values.update({f"val/static_bits_stage{s}": float(b) for s, b in enumerate(static)})
    logger.scalars(step, values)
    pairs = ", ".join(f"s{s} {c:.2f}/{b:.2f}" for s, (c, b) in enumerate(zip(context, static)))
    tqdm.write(f"step {step}: bits/index context/static {pairs}")


def _restore(
    prior: ContextPrior, optimizer: torch.optim.Optimizer, path: Path, config: PriorTrainConfig, codec_sha256: str
) -> int:
    """Load a checkpoint written by the same settings and codec; returns its step."""
    state = load_checkpoint(path)
    # Fields added since the checkpoint was written take their defaults, so older runs resume.
    stored = {**json.loads(PriorTrainConfig().to_json()), **json.loads(state["train_config"])}
    if stored != json.loads(config.to_json()) or state["codec_sha256"] != codec_sha256:
        raise click.UsageError(f"{path} was written with other settings or codec weights; drop --resume or pass the same ones")
    prior.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    return state["step"]


def _train_steps(
    prior: ContextPrior,
    optimizer: torch.optim.Optimizer,
    grids: list[np.ndarray],
    config: PriorTrainConfig,
    step: int,
    save: Callable[[int], None],
    logger: RunLogger,
) -> int:
    """Run the optimizer from `step` to `config.steps` with a progress bar; returns the last step."""
    progress = tqdm(total=config.steps, initial=step, desc="prior", unit="step", dynamic_ncols=True)
    started, first = time.time(), step
    while step < config.steps:
        set_learning_rate(optimizer, learning_rate(config, step))
        loss = prior(**make_batch(grids, config, step)).mean() / math.log(2)  # bits per predicted index
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        optimizer.step()
        step += 1
        progress.update(1)
        if step % config.log_every == 0:
            logger.scalars(
                step,
                {
                    "train/bits": loss.item(),
                    "train/lr": learning_rate(config, step - 1),
                    "train/steps_per_s": (step - first) / (time.time() - started),
                },
            )
            progress.set_postfix(bits=f"{loss.item():.3f}")
        if step % config.checkpoint_every == 0 or step == config.steps:
            save(step)
    progress.close()
    return step


def train_prior(
    codec_path: Path,
    data_dir: Path,
    out_path: Path,
    run_dir: Path,
    config: PriorTrainConfig,
    resume: bool,
    search_prior_path: Path | None = None,
) -> ContextPrior:
    """Cache tokens, train the prior (resuming from `run_dir` if asked), write it to `out_path`.
    With `search_prior_path` and `config.search_lambda` > 0 the tokens are searched indices."""
    if (search_prior_path is None) != (config.search_lambda == 0):
        raise ValueError("a search prior and a search λ > 0 go together")
    train_files, val_files = split_files(list_images(data_dir), config.validation_images)
    grids = load_or_build_cache(codec_path, train_files + val_files, run_dir / CACHE_FILE, config, search_prior_path)
    train_grids, val_grids = grids[: len(train_files)], grids[len(train_files) :]
    codec_sha256 = file_sha256(codec_path)
    torch.manual_seed(config.seed)
    prior = ContextPrior(config.prior)
    optimizer = torch.optim.AdamW(prior.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if resume and (run_dir / LATEST).exists():
        step = _restore(prior, optimizer, run_dir / LATEST, config, codec_sha256)
    else:  # a resumed run's checkpoint already holds the fitted tables
        step = 0
        fit_transitions(prior, train_grids)
        fit_neighbour_tables(prior, train_grids)
    logger = RunLogger(run_dir, start_step=step)
    (run_dir / "prior_config.json").write_text(config.to_json())

    def save(at: int) -> None:
        save_checkpoint(
            run_dir / LATEST,
            {
                "model": prior.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": at,
                "train_config": config.to_json(),
                "codec_sha256": codec_sha256,
            },
        )

    step = _train_steps(prior, optimizer, train_grids, config, step, save, logger)
    if val_grids:
        static = static_bits(train_grids, val_grids, config.prior.stages, config.prior.codebook_size)
        _report(logger, step, coding_bits(prior, val_grids), static)
    logger.close()
    save_prior_file(prior.eval(), out_path, description=f"context prior, {step} steps, codec sha256 {codec_sha256}")
    return prior
