"""Training checkpoints (model, optimizer, RNG and step, plus both configs) and weight export.

Checkpoints are for resuming training only; what ships is `export_weights`'s safetensors
file, which holds no discriminator or optimizer state.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from vqcodec.model import VQCodec

from .config import TrainConfig

LATEST = "latest.pt"
WEIGHTS = "weights.safetensors"


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic write: a crash mid-save never leaves a truncated checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


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
    tmp = path.with_suffix(".tmp")
    save_file(inference_state(model), str(tmp), metadata=metadata)
    os.replace(tmp, path)


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
    save_checkpoint(out_dir / LATEST, {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "quantizer_rng": model.quantizer.generator.get_state(),
        "step": step,
        "train_config": config.to_json(),
        **(extra or {}),
    })
    export_weights(model, out_dir / WEIGHTS, f"{config.phase} step {step}")


def restore_run(state: dict, model: VQCodec, optimizer: torch.optim.Optimizer) -> int:
    """Load what `save_run` wrote into `model` and `optimizer` (strictly); returns the step."""
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    model.quantizer.generator.set_state(state["quantizer_rng"])
    return state["step"]


def load_resume_state(config: TrainConfig, resume: bool) -> dict | None:
    """`out_dir/latest.pt` when resuming and it exists, after checking it is the same phase."""
    path = Path(config.out_dir) / LATEST
    if not (resume and path.exists()):
        return None
    state = load_checkpoint(path)
    phase = config_from_checkpoint(state).phase
    if phase != config.phase:
        raise ValueError(f"{path} is a {phase!r} checkpoint, cannot resume it as phase {config.phase!r}")
    return state
