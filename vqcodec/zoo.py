"""Model zoo: model name → (weights file inside the package, sha256). Models are rebuilt from
the config stored in the weights file and loaded strictly after the hash is verified."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from vqcodec.model import CodecConfig, VQCodec


@dataclass(frozen=True)
class ZooEntry:
    weights_file: str
    sha256: str
    description: str


MODELS: dict[str, ZooEntry] = {}
DEFAULT_MODEL = ""


def weights_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_codec_file(path: str | Path) -> VQCodec:
    """Rebuild a codec from a safetensors file written by training's `export_weights`."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "config" not in metadata:
        raise ValueError(f"{path} has no codec config in its metadata; was it written by vqcodec?")
    config = CodecConfig.from_json(metadata["config"])
    decoders = tuple(json.loads(metadata.get("decoders", '["fidelity"]')))
    model = VQCodec(config, decoders=tuple(sorted(decoders, key=lambda d: d != "fidelity")))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()
