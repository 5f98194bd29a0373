"""Model zoo: model name → weights shipped inside the package, with their sha256.

Models are rebuilt from the config stored in the weights file and loaded strictly after the
hash is verified; the stream records the name and the first bytes of the hash, so a file is
never decoded with weights other than those that wrote it.
"""
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

STREAM_HASH_BYTES = 8


@dataclass(frozen=True)
class ZooEntry:
    """A shipped model: codec weights file (inside `vqcodec/weights/`) and its sha256."""

    weights_file: str
    sha256: str
    description: str


MODELS: dict[str, ZooEntry] = {
    "vqc-f8-s4": ZooEntry(
        weights_file="vqc-f8-s4.safetensors",
        sha256="4de5b2b96bd67f4e7f7db1c2fbb0fe4ec83605d95c4aa9e204acd3dd6e1b8292",
        description="f=8, 4 residual stages of 1024 codewords; trained on BSDS500 + an ImageNet sample",
    ),
}
DEFAULT_MODEL = "vqc-f8-s4"


@dataclass(frozen=True)
class LoadedModel:
    name: str
    codec: VQCodec
    weights_hash: bytes  # first STREAM_HASH_BYTES of the weights' sha256, as stored in streams


def file_sha256(path: Path) -> str:
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
    model = VQCodec(config, decoders=decoders)
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


def resolve_name(name: str | None) -> str:
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return name


@lru_cache(maxsize=4)
def load_model(name: str | None = None) -> LoadedModel:
    """Load a shipped model once per process, verifying its sha256 first."""
    name = resolve_name(name)
    entry = MODELS[name]
    path = Path(str(resources.files("vqcodec.weights").joinpath(entry.weights_file)))
    if not path.is_file():
        raise FileNotFoundError(f"weights of model {name!r} are missing: {path}")
    digest = file_sha256(path)
    if digest != entry.sha256:
        raise ValueError(f"weights of model {name!r} fail their sha256 check (file {path} is corrupt or replaced)")
    return LoadedModel(name, load_codec_file(path), bytes.fromhex(digest)[:STREAM_HASH_BYTES])
