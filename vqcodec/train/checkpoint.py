"""Training checkpoints (model, optimizer, RNG and step, plus both configs), the leaner state
the next leg of a run starts from, and weight export.

Checkpoints are for resuming training only; what ships is `export_weights`'s safetensors
file, which holds no discriminator or optimizer state.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import torch

from vqcodec.files import write_atomic
from vqcodec.model import VQCodec
from vqcodec.reproducible import safetensors_bytes

from .config import TrainConfig, load_config

LATEST = "latest.pt"
WEIGHTS = "weights.safetensors"


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic write: a crash mid-save never leaves a truncated checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by `save_checkpoint`; ValueError for any other file."""
    try:  # weights_only: tensors and plain containers, no pickled code runs
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f"{path} is not a vqcodec training checkpoint: {error}") from error
    if not isinstance(state, dict) or not {"model", "step", "train_config"} <= set(state):
        raise ValueError(f"{path} is not a vqcodec training checkpoint (model, step or config missing)")
    return state


def config_from_checkpoint(state: dict) -> TrainConfig:
    return TrainConfig.from_dict(json.loads(state["train_config"]))


def inference_state(model: VQCodec) -> dict[str, torch.Tensor]:
    """The model's state dict (EMA codebook statistics included, so loading stays strict)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def export_weights(model: VQCodec, path: Path, description: str) -> None:
    """Write inference weights as safetensors with the model config in the metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "config": model.config.to_json(),
        "decoders": json.dumps(sorted(model.decoders)),
        "description": description,
    }
    write_atomic(path, safetensors_bytes(inference_state(model), metadata))


def save_run(
    out_dir: Path,
    config: TrainConfig,
    step: int,
    model: VQCodec,
    optimizer: torch.optim.Optimizer,
    extra: dict | None = None,
) -> None:
    """Write `latest.pt` (everything a resume needs; `extra` holds phase-specific state such
    as the discriminator) and export the inference weights next to it."""
    save_checkpoint(
        out_dir / LATEST,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "quantizer_rng": model.quantizer.generator.get_state(),
            "step": step,
            "train_config": config.to_json(),
            **(extra or {}),
        },
    )
    export_weights(model, out_dir / WEIGHTS, f"{config.phase} step {step}")


def restore_run(state: dict, model: VQCodec, optimizer: torch.optim.Optimizer, weight_decay: float) -> int:
    """Load what `save_run` wrote into `model` and `optimizer` (strictly); returns the step.

    The optimizer's state comes back with the hyperparameters it was saved with; the run's
    `weight_decay` is set again so that a resume that changes it takes effect (the learning
    rate is set every step anyway)."""
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    for group in optimizer.param_groups:
        group["weight_decay"] = weight_decay
    model.quantizer.generator.set_state(state["quantizer_rng"])
    return state["step"]


def leg_state(state: dict) -> dict:
    """What the next leg of a VQ-VAE run needs from its checkpoint `state`: the weights, in
    float16, with the step and config they came from (and no optimizer or RNG state).

    A run that moves between machines keeps its state in the repository, where every version
    stays in the history. Each leg starts a fresh schedule from the last one's weights
    (`init_from`), so the optimizer's moments, two thirds of a checkpoint, are not needed, and
    float16 halves the rest: rounding a codec's weights to float16 does not move its
    rate-distortion figures (experiments/half-weights), and loading upcasts them."""
    if config_from_checkpoint(state).phase != "vqvae":
        raise ValueError("only a vqvae checkpoint has a next VQ-VAE leg; this one is a realism-decoder phase")
    model = {key: value.half() if value.is_floating_point() else value for key, value in state["model"].items()}
    return {"model": model, "step": state["step"], "train_config": state["train_config"]}


def resume_run(config: TrainConfig, path: str | None, overrides: list[str]) -> tuple[TrainConfig, dict | None]:
    """What `--resume` continues: (config, checkpoint state), reading `out_dir/latest.pt` once.

    The config is the checkpoint's own with the config file and overrides on top, so a resume
    names only what changes (the phase included). `config` (parsed without the checkpoint)
    locates the run; it comes back unchanged, with no state, when there is nothing to resume.
    Refuses another phase, a changed VQ-VAE architecture and a finished schedule.
    """
    latest = Path(config.out_dir) / LATEST
    if not latest.exists():
        return config, None
    state = load_checkpoint(latest)
    if "optimizer" not in state:
        raise ValueError(
            f"{latest} is a leg state (weights only, `vqcodec leg-state`): start the next leg from it with "
            f"init_from={latest} and another out_dir, not --resume"
        )
    saved = config_from_checkpoint(state)
    resumed = load_config(path, overrides, base=saved)
    if resumed.phase != saved.phase:
        raise ValueError(f"{latest} is a {saved.phase!r} checkpoint, cannot resume it as phase {resumed.phase!r}")
    if resumed.phase == "vqvae" and resumed.model != saved.model:
        raise ValueError(f"{latest} holds model {saved.model}; a resume cannot change model.* options")
    if state["step"] >= resumed.steps:
        raise ValueError(
            f"{latest} is at step {state['step']}, not below steps={resumed.steps}: pass a larger steps= to continue"
        )
    return resumed, state
