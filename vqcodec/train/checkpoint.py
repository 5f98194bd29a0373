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
