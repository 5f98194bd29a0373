"""Training of the context prior on token grids of a frozen codec: token cache, masked-token
training loop (resumable, logged) and the `train-prior` click command.

The codec encodes every training image once; the grids are cached (keyed by the codec's
weights hash), so epochs cost only the prior's own compute. The grids hold the nearest
codewords, or, with a search prior, the indices `vqcodec encode` would write against it
(`vqcodec.entropy.rdo`): a prior then learns the statistics of the files it will code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from vqcodec import coding
from vqcodec.entropy.context import NEIGHBOUR_OFFSETS, TILES, ContextPrior, PriorConfig, group_map
from vqcodec.entropy.fixedpoint import INT8_MAX
from vqcodec.entropy.prior_file import load_prior_file, save_prior_file
from vqcodec.zoo import file_sha256, load_codec_file

from .checkpoint import load_checkpoint, save_checkpoint
from .data import list_images, load_rgb, split_files
from .logger import RunLogger
from .loop import learning_rate, set_learning_rate

CACHE_FILE = "tokens.safetensors"
LATEST = "prior_latest.pt"


# Stages 1 and 2 in five groups, the first only 1/16 of the grid, so most tokens see known
# neighbours; later stages in one group: their same-stage neighbours tell almost nothing
# (experiments/token-context/token_context.py) and their pair tables, fitted on training grids, overfit, so
# held-out bits rise with them; one group also decodes in one pass.
DEFAULT_SCHEDULE = ("pyramid", "pyramid", "all")


@dataclass
class PriorTrainConfig:
    """One prior training run; stored in its checkpoints. Field names shared with
    `TrainConfig` (lr, steps, warmup_steps, min_lr_ratio) feed the same `learning_rate`."""

    prior: PriorConfig = field(default_factory=PriorConfig)
    steps: int = 2000
    batch_size: int = 16
    crop: int = 24  # token crop side (24 tokens = 192 pixels)
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    schedule_mask_share: float = 0.5  # share of samples masked like the coding schedule
    max_side: int = 768  # larger training images are downscaled before encoding
    search_lambda: float = 0.0  # relative λ of the rate–distortion search for the tokens (0: nearest)
    validation_images: int = 16
    log_every: int = 25
    checkpoint_every: int = 250
    seed: int = 0

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        fields["prior"] = json.loads(self.prior.to_json())
        return json.dumps(fields, sort_keys=True)


def token_image(path: Path, min_side: int, max_side: int) -> np.ndarray:
    """`[H, W, 3]` uint8 of a training image as the token cache encodes it: downscaled if a
    side exceeds max_side, though never below min_side, so every grid holds a training crop."""
    rgb = load_rgb(path, min_side)
    scale = max(max_side / max(rgb.shape[:2]), min_side / min(rgb.shape[:2]))
    if scale < 1:
        from PIL import Image

        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))
    return rgb


def _encode_file(
    codec, path: Path, min_side: int, max_side: int, search_prior: ContextPrior | None, search_lambda: float
) -> np.ndarray:
    """One image → `[S, h, w]` int16 token grid: nearest codewords, or searched against
    `search_prior` with relative λ `search_lambda`."""
    stages = codec.config.stages
    lambdas = None if search_prior is None else [search_lambda] * stages
    return coding.quantize(codec, token_image(path, min_side, max_side), stages, search_prior, lambdas).astype(np.int16)


def read_token_cache(path: Path) -> tuple[dict[str, str], list[np.ndarray]]:
    """(metadata, token grids `[S, h, w]` int16) of a cache written by `load_or_build_cache`."""
    with safe_open(str(path), framework="np") as handle:
        flat, shapes = handle.get_tensor("tokens"), handle.get_tensor("shapes")
        metadata = handle.metadata() or {}
    ends = np.cumsum(shapes.prod(axis=1))
    return metadata, [flat[e - s.prod() : e].reshape(s) for e, s in zip(ends, shapes)]


def load_or_build_cache(
    codec_path: Path, files: list[Path], cache_path: Path, config: PriorTrainConfig, search_prior_path: Path | None = None
) -> list[np.ndarray]:
    """Token grids of `files`, read from `cache_path` when it was built by the same codec
    weights (and search prior and λ) from the same file list, else encoded now and written there."""
    # Paths, sizes and modification times: another folder, or images edited in place, rebuild it.
    listing = "\n".join(f"{p}\t{stat.st_size}\t{stat.st_mtime_ns}" for p, stat in ((p, p.stat()) for p in files))
    key = {
        "codec_sha256": file_sha256(codec_path),
        "files": str(len(files)),
        "max_side": str(config.max_side),
        "listing": hashlib.sha256(listing.encode()).hexdigest(),
    }
    if search_prior_path is not None:
        key["search"] = f"{file_sha256(search_prior_path)} {config.search_lambda!r}"
    if cache_path.exists():
        metadata, grids = read_token_cache(cache_path)
        if metadata == key:
            return grids
        click.echo(f"{cache_path} was built from other weights or images; rebuilding it")
    codec = load_codec_file(codec_path)
    search_prior = None if search_prior_path is None else load_prior_file(search_prior_path)
    if search_prior is not None:
        search_prior.config.check_fits(codec.config.stages, codec.config.codebook_size, f"search prior {search_prior_path}")
    min_side = config.crop * codec.config.stride
    grids = [
        _encode_file(codec, path, min_side, config.max_side, search_prior, config.search_lambda)
        for path in tqdm(files, desc="encode tokens", unit="img")
    ]
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "tokens": torch.from_numpy(np.concatenate([g.reshape(-1) for g in grids])),
        "shapes": torch.tensor([g.shape for g in grids], dtype=torch.int64),
    }
    save_file(tensors, str(cache_path), metadata=key)
    return grids


@torch.no_grad()
def fit_transitions(prior: ContextPrior, grids: list[np.ndarray], smoothing: float = 20.0) -> None:
    """Start each stage-pair table at the log conditional frequencies p(token_s | token_{s-1})
    of the training grids, smoothed towards the stage's marginal; training refines them."""
    k = prior.config.codebook_size
    for s in range(1, prior.config.stages):
        pairs = np.concatenate([(g[s - 1].astype(np.int64) * k + g[s]).reshape(-1) for g in grids])
        joint = np.bincount(pairs, minlength=k * k).reshape(k, k).astype(np.float64)
        marginal = (joint.sum(axis=0) + 1) / (joint.sum() + k)
        conditional = (joint + smoothing * marginal) / (joint.sum(axis=1, keepdims=True) + smoothing)
        table = np.log(conditional)
        prior.transition[s - 1, :k] = torch.from_numpy(table - table.mean(axis=1, keepdims=True)).float()


def fit_neighbour_tables(prior: ContextPrior, grids: list[np.ndarray], smoothing: float = 4.0) -> None:
    """Fill the neighbour pair tables with the pointwise mutual information of adjacent
    tokens of each stage, counted on the training grids, as int8 logits. Counting is exact
    and takes seconds, where learning a K×K table by gradient would take far longer than the
    rest of the prior. Counts get add-`smoothing`: with about three pairs per cell the raw
    counts overfit, and add-4 beat add-1 on held-out grids."""
    k, scale = prior.config.codebook_size, 2.0**prior.config.logit_bits
    for s in range(prior.config.stages):
        stage_grids = [g[s].astype(np.int64) for g in grids]
        for d, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
            pairs = [offset_pairs(grid, grid, dy, dx) for grid in stage_grids]
            counts = np.bincount(np.concatenate([there * k + here for there, here in pairs]), minlength=k * k)
            joint = counts.reshape(k, k) + smoothing
            pmi = (
                np.log(joint * joint.sum()) - np.log(joint.sum(axis=1, keepdims=True)) - np.log(joint.sum(axis=0, keepdims=True))
            )
            table = np.clip(np.round(pmi * scale), -INT8_MAX, INT8_MAX).astype(np.int8)
            prior.neighbour[s, d] = torch.from_numpy(table)


def offset_pairs(context: np.ndarray, target: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat (context token at p+(dy, dx), target token at p) for every position p of the
    `[h, w]` grids where both exist."""
    h, w = target.shape
    here = target[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    there = context[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
    return there.reshape(-1), here.reshape(-1)


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


@click.command("train-prior")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option(
    "--codec",
    "codec_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Frozen codec weights (safetensors).",
)
@click.option(
    "--run-dir", type=click.Path(file_okay=False), help="Token cache, checkpoints and logs [default: OUT's folder/prior-run]."
)
@click.option("--steps", default=PriorTrainConfig.steps, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=PriorTrainConfig.batch_size, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=PriorTrainConfig.lr, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--width", default=PriorConfig.width, show_default=True, type=click.IntRange(1, 64), help="Trunk channels.")
@click.option("--blocks", default=PriorConfig.blocks, show_default=True, type=click.IntRange(0, 16), help="Residual blocks.")
@click.option("--threads", default=0, type=click.IntRange(0), help="Torch CPU threads (0: torch's default).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--schedule",
    default=",".join(DEFAULT_SCHEDULE),
    show_default=True,
    help=f"Coding groups per stage: tile names from {', '.join(TILES)}, comma-separated; the last repeats.",
)
@click.option(
    "--search-prior",
    type=click.Path(exists=True, dir_okay=False),
    help="Train on the indices the rate-distortion search writes against this context prior "
    "(as `vqcodec encode` does) instead of the nearest codewords.",
)
@click.option(
    "--search-lambda",
    default=0.08,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Relative λ of that search (the shipped model's rdo_lambdas).",
)
@click.option("--resume", is_flag=True, help="Continue from RUN_DIR/prior_latest.pt if it exists.")
@click.option("--force", is_flag=True, help="Overwrite OUT.")
def train_prior_command(
    data_dir,
    out,
    codec_path,
    run_dir,
    steps,
    batch_size,
    lr,
    width,
    blocks,
    threads,
    seed,
    schedule,
    search_prior,
    search_lambda,
    resume,
    force,
) -> None:
    """Train the context prior on DATA_DIR's images (tokens of the frozen --codec) and write it to OUT."""
    out_path = Path(out)
    if out_path.exists() and not force:
        raise click.ClickException(f"{out_path} exists; pass --force to overwrite it")
    if threads:
        torch.set_num_threads(threads)
    try:
        codec_config = load_codec_file(codec_path).config
        tiles = schedule.split(",")
        tiles += tiles[-1:] * (codec_config.stages - len(tiles))
        prior_config = PriorConfig(
            stages=codec_config.stages,
            codebook_size=codec_config.codebook_size,
            width=width,
            blocks=blocks,
            schedule=tuple(tiles[: codec_config.stages]),
        )
        config = PriorTrainConfig(
            prior=prior_config,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            search_lambda=search_lambda if search_prior else 0.0,
        )
        run = Path(run_dir) if run_dir else out_path.parent / "prior-run"
        started = time.time()
        train_prior(Path(codec_path), Path(data_dir), out_path, run, config, resume, Path(search_prior) if search_prior else None)
    except (ValueError, RuntimeError, FileNotFoundError) as error:  # RuntimeError: a checkpoint that does not fit
        raise click.ClickException(str(error)) from error
    click.echo(f"prior written to {out_path} ({time.time() - started:.0f} s)")
