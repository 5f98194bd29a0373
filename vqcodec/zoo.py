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
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vqcodec.bitstream import HASH_SIZE
from vqcodec.model import CodecConfig, VQCodec

if TYPE_CHECKING:
    from vqcodec.entropy.context import ContextPrior



@dataclass(frozen=True)
class ZooEntry:
    """A shipped model: codec weights (inside `vqcodec/weights/`) and, optionally, the
    weights of its context prior, each with its sha256."""

    weights_file: str
    sha256: str
    description: str
    prior_file: str | None = None
    prior_sha256: str | None = None
    # Relative λ per stage (as `vqcodec.entropy.rdo.quantize_for_rate` takes them) for encoding
    # against the context prior, chosen on training images with benchmarks/rdo.py; empty: the
    # encoder picks nearest codewords.
    rdo_lambdas: tuple[float, ...] = ()


# A model's weights never change under its name: files name the model that wrote them, so
# better weights ship under a new name and the earlier models stay to decode older files.
MODELS: dict[str, ZooEntry] = {
    "vqc-f8-s4": ZooEntry(
        weights_file="vqc-f8-s4.safetensors",
        sha256="da5abdf4e06b5904fdad9ae842112459b58876d52d27f9028d1452598640cf99",
        description="f=8, 4 residual stages of 1024 codewords, fidelity + realism decoders, commitment 0.25 "
        "(superseded by vqc-f8-s4-v2, then vqc-f8-s4-v3); trained on BSDS500 + an ImageNet sample",
        prior_file="vqc-f8-s4-prior.safetensors",
        prior_sha256="837aeb0532bd900a131b20c7069c5cf4226dfdbdee375c4d185701b0c7303254",
    ),
    "vqc-f8-s4-v2": ZooEntry(
        weights_file="vqc-f8-s4-v2.safetensors",
        sha256="a60672d4daf57458e7655bc9cfdc5726908b2ceee1c27e350667cdf6aa06d88f",
        description="f=8, 4 residual stages of 1024 codewords, fidelity + realism decoders, commitment 0.05 "
        "(superseded by vqc-f8-s4-v3); trained on BSDS500 + an ImageNet sample",
        prior_file="vqc-f8-s4-v2-prior.safetensors",
        prior_sha256="578cc01e25aa36654da84e6efdb283d6b4863225d563859c60091aee1d7c575e",
    ),
    "vqc-f8-s4-v3": ZooEntry(
        weights_file="vqc-f8-s4-v3.safetensors",
        sha256="374de670eec4fb0d11527bb8c89bc2f05ba0528ba4c204c532aa9786ad3d88dc",
        description="f=8, 4 residual stages of 1024 codewords, fidelity + realism decoders, commitment 0.05, "
        "a last leg weighted towards 3-4 stages; trained on BSDS500 + an ImageNet sample",
        prior_file="vqc-f8-s4-v3-prior.safetensors",
        prior_sha256="147f47a2f45fc3cd2b85e4a570db58cc4f84dffff745ac38717bbdd0e3007dae",
        rdo_lambdas=(0.08, 0.08, 0.08, 0.08),
    ),
}
DEFAULT_MODEL = "vqc-f8-s4-v3"


@dataclass(frozen=True)
class LoadedModel:
    name: str
    codec: VQCodec
    weights_hash: bytes  # first HASH_SIZE bytes of the weights' sha256, as stored in streams
    context_prior: "ContextPrior | None" = None
    prior_hash: bytes = bytes(HASH_SIZE)
    rdo_lambdas: tuple[float, ...] = ()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_codec_file(path: str | Path) -> VQCodec:
    """Rebuild a codec from a safetensors file written by training's `export_weights`.

    Raises:
        ValueError: the file is not codec weights (not safetensors, another kind of
            safetensors file such as a context prior, or weights that do not fit their config).
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if "config" not in metadata:
            raise ValueError("no codec config in its metadata")
        config = CodecConfig.from_json(metadata["config"])
        decoders = tuple(json.loads(metadata.get("decoders", '["fidelity"]')))
        # Built outside inference mode even when called inside it: inference tensors have no
        # version counter, which the context prior's caches and later training rely on.
        with torch.inference_mode(False):
            model = VQCodec(config, decoders=decoders)
            model.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is not vqcodec codec weights: {error}") from error
    return model.eval()


def resolve_name(name: str | None) -> str:
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return name


def _verified_path(name: str, file_name: str, sha256: str) -> Path:
    path = Path(str(resources.files("vqcodec.weights").joinpath(file_name)))
    if not path.is_file():
        raise FileNotFoundError(f"weights of model {name!r} are missing: {path}")
    if file_sha256(path) != sha256:
        raise ValueError(f"weights of model {name!r} fail their sha256 check (file {path} is corrupt or replaced)")
    return path


def load_model(name: str | None = None) -> LoadedModel:
    """Load a shipped model (and its context prior, if it has one) once per process,
    verifying every sha256 first."""
    return _load_model(resolve_name(name))


@lru_cache(maxsize=4)
def _load_model(name: str) -> LoadedModel:
    entry = MODELS[name]
    codec = load_codec_file(_verified_path(name, entry.weights_file, entry.sha256))
    weights_hash = bytes.fromhex(entry.sha256)[:HASH_SIZE]
    if entry.prior_file is None:
        return LoadedModel(name, codec, weights_hash)
    from vqcodec.entropy.context import load_prior_file

    prior = load_prior_file(_verified_path(name, entry.prior_file, entry.prior_sha256))
    prior.config.check_fits(codec.config.stages, codec.config.codebook_size, f"the context prior of model {name!r}")
    if entry.rdo_lambdas and len(entry.rdo_lambdas) != codec.config.stages:
        raise ValueError(f"model {name!r} needs one rdo λ per stage ({codec.config.stages}), has {len(entry.rdo_lambdas)}")
    return LoadedModel(name, codec, weights_hash, prior, bytes.fromhex(entry.prior_sha256)[:HASH_SIZE], entry.rdo_lambdas)
