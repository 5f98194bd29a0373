"""Model zoo: model name → weights shipped inside the package (one model) or retired, with their sha256.

Models are rebuilt from the config stored in the weights file and loaded strictly after the
hash is verified; the stream records the name and the first bytes of the hash, so a file is
never decoded with weights other than those that wrote it. Codec weights outside the zoo
(a `.safetensors` file from `vqcodec export-model`) load by path: their name comes from the
file name and their hash from the file itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vqcodec.bitstream import HASH_SIZE, MAX_MODEL_ID
from vqcodec.model import CodecConfig, VQCodec

if TYPE_CHECKING:
    from vqcodec.entropy.context import ContextPrior


WEIGHTS_PATH_VARIABLE = "VQCODEC_WEIGHTS"  # folders (os.pathsep-separated) holding retired models' files


class NotInstalled(ValueError):
    """A model or prior this installation does not have; the message says how to get it."""


@dataclass(frozen=True)
class WeightsFile:
    """One file of a model (codec weights or a context prior) and its sha256.

    The installed model's files ship in `vqcodec/weights/`. A retired file no longer ships;
    `retired_after` names the last commit of the project that held it there, so
    `git show REV:vqcodec/weights/NAME` brings it back, and it is found in the folders of
    `VQCODEC_WEIGHTS`.
    """

    name: str
    sha256: str
    retired_after: str | None = None


@dataclass(frozen=True)
class ZooEntry:
    """A model: codec weights and its context priors (the first codes new files, the others
    only decode the files they wrote)."""

    weights: WeightsFile
    description: str
    priors: tuple[WeightsFile, ...] = ()
    # Relative λ per stage (as `vqcodec.entropy.rdo.quantize_for_rate` takes them) for encoding
    # against the context prior, chosen on training images with benchmarks/rdo.py; empty: the
    # encoder picks nearest codewords.
    rdo_lambdas: tuple[float, ...] = ()
    # The (stage count, rdo strength) points `quality` steps through with the context prior,
    # smallest files first: of every stage count at every strength, those that no other beats
    # in PSNR for as many bits or up to 2 % more on training images (benchmarks/quality_points.py),
    # so that both rise with quality. Empty: every stage count at every strength
    # (`api.operating_points`).
    quality_points: tuple[tuple[int, float], ...] = ()


# A commit that still shipped every model retired when the package was cut to one model.
LAST_WITH_ALL_MODELS = "2ecda6ad45a2f2483d841872db7915940187c469"
# The last commit that shipped vqc-f8-s4-v3, the default before vqc-f8-s8.
LAST_WITH_V3 = "e0400b94baa147e46f334edf76f0b1446824ad10"
# The last commit that shipped vqc-f8-s8, the default before vqc-f8-s10.
LAST_WITH_S8 = "b7bfd29d484bd91756548404623e649b642baa96"

# The quality points that vqc-f8-s8 and vqc-f8-s10, each chosen on its own, share up to 7
# stages (benchmarks/quality_points.py): every strength up to 4 stages; from 5, strength 2 no
# longer pays, and at 6-7 neither do the nearest codewords.
QUALITY_POINTS_TO_7_STAGES: tuple[tuple[int, float], ...] = (
    *((count, strength) for count in range(1, 5) for strength in (2.0, 1.0, 0.5, 0.0)),
    (5, 1.0),
    (5, 0.5),
    (5, 0.0),
    (6, 1.0),
    (6, 0.5),
    (7, 1.0),
    (7, 0.5),
)

# A model's weights never change under its name: files name the model (and hash) that wrote
# them, so better weights ship under a new name and retired ones stay listed here, which lets
# a file of a retired model say exactly what it needs.
MODELS: dict[str, ZooEntry] = {
    "vqc-f8-s4": ZooEntry(
        weights=WeightsFile(
            "vqc-f8-s4.safetensors", "da5abdf4e06b5904fdad9ae842112459b58876d52d27f9028d1452598640cf99", LAST_WITH_ALL_MODELS
        ),
        description="f=8, 4 residual stages of 1024 codewords, fidelity + realism decoders, commitment 0.25 "
        "(superseded by vqc-f8-s4-v2, then vqc-f8-s4-v3); trained on BSDS500 + an ImageNet sample",
        priors=(
            WeightsFile(
                "vqc-f8-s4-prior.safetensors",
                "837aeb0532bd900a131b20c7069c5cf4226dfdbdee375c4d185701b0c7303254",
                LAST_WITH_ALL_MODELS,
            ),
        ),
    ),
    "vqc-f8-s4-v2": ZooEntry(
        weights=WeightsFile(
            "vqc-f8-s4-v2.safetensors", "a60672d4daf57458e7655bc9cfdc5726908b2ceee1c27e350667cdf6aa06d88f", LAST_WITH_ALL_MODELS
        ),
        description="f=8, 4 residual stages of 1024 codewords, fidelity + realism decoders, commitment 0.05 "
        "(superseded by vqc-f8-s4-v3); trained on BSDS500 + an ImageNet sample",
        priors=(
            WeightsFile(
                "vqc-f8-s4-v2-prior.safetensors",
                "578cc01e25aa36654da84e6efdb283d6b4863225d563859c60091aee1d7c575e",
                LAST_WITH_ALL_MODELS,
            ),
        ),
    ),
    "vqc-f8-s4-v3": ZooEntry(
        weights=WeightsFile(
            "vqc-f8-s4-v3.safetensors", "374de670eec4fb0d11527bb8c89bc2f05ba0528ba4c204c532aa9786ad3d88dc", LAST_WITH_V3
        ),
        description="f=8, 4 residual stages of 1024 codewords, fidelity + realism decoders, commitment 0.05, "
        "a last leg weighted towards 3-4 stages (superseded by vqc-f8-s8); trained on BSDS500 + an ImageNet sample",
        priors=(
            WeightsFile(
                "vqc-f8-s4-v3-lean-prior.safetensors.xz",
                "80343b3176aad78ad87611fee1a6d4bdf7912ff200f0cc70d66b88970f951aff",
                LAST_WITH_V3,
            ),
            WeightsFile(
                "vqc-f8-s4-v3-prior.safetensors",
                "147f47a2f45fc3cd2b85e4a570db58cc4f84dffff745ac38717bbdd0e3007dae",
                LAST_WITH_ALL_MODELS,
            ),
        ),
        rdo_lambdas=(0.08, 0.08, 0.08, 0.08),
    ),
    "vqc-f8-s8": ZooEntry(
        weights=WeightsFile(
            "vqc-f8-s8.safetensors", "9b42acbae3fb40164db51c3fc9f183f9349303297a08311dd41cde34b7a4a70e", LAST_WITH_S8
        ),
        description="f=8, 8 residual stages of 1024 codewords, fidelity + realism decoders: vqc-f8-s4-v3 grown by "
        "4 stages and trained two more legs, weights stored as float16 (superseded by vqc-f8-s10); trained on "
        "BSDS500 + an ImageNet sample",
        priors=(
            WeightsFile(
                "vqc-f8-s8-lean-prior.safetensors.xz",
                "652ae6d17544629326b8ec7e9f2ed5d9a483ddc09116478674900aca7b6ae243",
                LAST_WITH_S8,
            ),
        ),
        rdo_lambdas=(0.08,) * 8,
        # benchmarks/results/quality at commit b7bfd29d: 26 of the 32 points. From 5 stages up,
        # one stage more at strength 2 gives less PSNR than the stage count before with the
        # nearest codewords, and 6 or 7 stages with the nearest codewords cost about as much as
        # one stage more at strength 1, for less PSNR.
        quality_points=(
            *QUALITY_POINTS_TO_7_STAGES,
            (8, 1.0),
            (8, 0.5),
            (8, 0.0),
        ),
    ),
    "vqc-f8-s10": ZooEntry(
        weights=WeightsFile("vqc-f8-s10.safetensors", "7a4cd1fd6da13cb209ac5b181a82971ecea3b9830d4cb33475b4fe0ef149b260"),
        description="f=8, 10 residual stages of 512 codewords, fidelity + realism decoders: vqc-f8-s8's networks "
        "grown to 10 stages of K=512 and trained four legs (6.2 hours on 2 CPU cores), weights stored as float16; "
        "trained on BSDS500 + an ImageNet sample",
        priors=(
            WeightsFile(
                "vqc-f8-s10-lean-prior.safetensors.xz", "e3860b5177fc319bd9ded5fe0a5fef8edc45cbb64f33382c1c36af62d7910bf8"
            ),
        ),
        rdo_lambdas=(0.08,) * 10,
        # benchmarks/results/quality: 31 of the 40 points. At 9-10 stages one stage more at a
        # lower strength is the better step, and 10 stages at strength 1 or 2 give less PSNR
        # than 9 stages for as many bits.
        quality_points=(
            *QUALITY_POINTS_TO_7_STAGES,
            (8, 1.0),
            (8, 0.5),
            (9, 1.0),
            (8, 0.0),
            (9, 0.5),
            (9, 0.0),
            (10, 0.5),
            (10, 0.0),
        ),
    ),
}
DEFAULT_MODEL = "vqc-f8-s10"


def installed_models() -> list[str]:
    """Names of the models whose weights ship with this installation."""
    return sorted(name for name, entry in MODELS.items() if entry.weights.retired_after is None)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    codec: VQCodec
    weights_hash: bytes  # first HASH_SIZE bytes of the weights' sha256, as stored in streams
    context_prior: ContextPrior | None = None
    prior_hash: bytes = bytes(HASH_SIZE)
    rdo_lambdas: tuple[float, ...] = ()
    quality_points: tuple[tuple[int, float], ...] = ()


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
        raise ValueError(
            f"unknown model {name!r}; installed: {', '.join(installed_models())} "
            "(or give the path of a .safetensors codec weights file)"
        )
    return name


def is_model_file(model: str | Path | None) -> bool:
    """Whether `model` names a weights file rather than a zoo model: a `Path`, or a string
    that is not a zoo name and ends in `.safetensors`."""
    return isinstance(model, Path) or (isinstance(model, str) and model not in MODELS and model.endswith(".safetensors"))


def load(model: str | Path | None = None, prior_file: str | Path | None = None) -> LoadedModel:
    """A zoo model by name (default `DEFAULT_MODEL`) or a codec weights file by path, with the
    context prior of `prior_file` when given (else the zoo model's own; none for a file)."""
    if is_model_file(model):
        assert model is not None
        return load_model_file(model, prior_file)
    assert not isinstance(model, Path)  # every Path names a weights file
    loaded = load_model(model)
    return loaded if prior_file is None else _with_prior_file(loaded, Path(prior_file))


def model_id_for_file(path: Path) -> str:
    """The model id a weights file writes into streams: its file name without `.safetensors`,
    lowercased, other characters than [a-z0-9._-] as "-", at most 64 characters."""
    stem = path.name.removesuffix(".safetensors").lower()
    return re.sub(r"[^a-z0-9._-]", "-", stem)[:MAX_MODEL_ID] or "model"


def load_model_file(path: str | Path, prior_path: str | Path | None = None) -> LoadedModel:
    """Load codec weights from `path` (and a context prior from `prior_path`), hashed on every
    call and loaded once per content. Files that a zoo entry lists load as that model.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not codec weights (or not a context prior), or a prior that does not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path}")
    loaded = _load_model_file(str(path.resolve()), file_sha256(path))
    return loaded if prior_path is None else _with_prior_file(loaded, Path(prior_path))


@lru_cache(maxsize=4)
def _load_model_file(path: str, sha256: str) -> LoadedModel:
    codec = load_codec_file(path)
    # A copy of a zoo model's weights keeps that model's name: its streams decode without the file.
    name = next((name for name, entry in MODELS.items() if entry.weights.sha256 == sha256), model_id_for_file(Path(path)))
    return LoadedModel(name, codec, bytes.fromhex(sha256)[:HASH_SIZE])


def _with_prior_file(loaded: LoadedModel, path: Path) -> LoadedModel:
    """`loaded` coding with the context prior in `path` (no tuned rdo profile or quality points:
    those belong to the zoo's own prior)."""
    if not path.is_file():
        raise FileNotFoundError(f"no context prior file {path}")
    sha256 = file_sha256(path)
    prior = _fitting_prior(path, sha256, loaded.codec, f"the context prior {path}")
    return replace(loaded, context_prior=prior, prior_hash=bytes.fromhex(sha256)[:HASH_SIZE], rdo_lambdas=(), quality_points=())


def _fitting_prior(path: Path, sha256: str, codec: VQCodec, what: str) -> ContextPrior:
    """The context prior in `path` (whose sha256 is `sha256`), checked to fit `codec`."""
    prior = _load_prior_file(str(path.resolve()), sha256)
    prior.config.check_fits(codec.config.stages, codec.config.codebook_size, what)
    return prior


@lru_cache(maxsize=4)
def _load_prior_file(path: str, sha256: str) -> ContextPrior:
    """One load per file content (the key holds its sha256)."""
    from vqcodec.entropy.prior_file import load_prior_file

    return load_prior_file(path)


def _install_hint(what: str, file: WeightsFile) -> str:
    """How to install a retired `file` from the history."""
    assert file.retired_after is not None
    commit = file.retired_after[:12]
    return (
        f"{what} is not installed: it last shipped in commit {commit} of vqcodec. To use it, "
        f"run `git show {commit}:vqcodec/weights/{file.name} > DIR/{file.name}` in a clone of "
        f"vqcodec and set {WEIGHTS_PATH_VARIABLE}=DIR (docs/models.md)"
    )


def _locate(file: WeightsFile) -> Path | None:
    """Where `file` is: the package's weights for a shipped file, the first folder of
    VQCODEC_WEIGHTS holding it for a retired one; None when it is not there."""
    if file.retired_after is None:
        folders = [Path(str(resources.files("vqcodec.weights")))]
    else:
        folders = [Path(folder) for folder in os.environ.get(WEIGHTS_PATH_VARIABLE, "").split(os.pathsep) if folder]
    return next((folder / file.name for folder in folders if (folder / file.name).is_file()), None)


def _verified_path(what: str, file: WeightsFile) -> Path:
    """`_locate(file)`, its sha256 checked."""
    path = _locate(file)
    if path is None and file.retired_after is None:
        raise FileNotFoundError(f"{what} is missing from the installation: {file.name}")
    if path is None:
        raise NotInstalled(_install_hint(what, file))
    if file_sha256(path) != file.sha256:
        raise ValueError(f"{what} fails its sha256 check (file {path} is corrupt or replaced)")
    return path


def find_prior(name: str, prior_hash: bytes) -> WeightsFile:
    """The context prior of model `name` whose sha256 starts with `prior_hash` (as streams
    store it), shipped or retired."""
    for file in MODELS[resolve_name(name)].priors:
        if bytes.fromhex(file.sha256)[: len(prior_hash)] == prior_hash:
            return file
    raise NotInstalled(f"context prior {prior_hash.hex()} of model {name!r} is unknown to this version of vqcodec")


def load_model(name: str | None = None, prior: WeightsFile | None = None) -> LoadedModel:
    """Load a model with a context prior (default: the one that codes new files; `find_prior`
    gives those of older files) once per process, verifying every sha256 first.

    Raises:
        NotInstalled: a retired model or prior whose file is not in VQCODEC_WEIGHTS.
    """
    name = resolve_name(name)
    entry = MODELS[name]
    return _load_model(name, prior or (entry.priors[0] if entry.priors else None))


def load_codec(name: str) -> VQCodec:
    """Model `name`'s codec weights alone, sha256 checked, without its context prior: a fresh
    copy each call, not the one `load_model` caches, so training may change it (`vqcodec
    train init_from=NAME`)."""
    entry = MODELS[resolve_name(name)]
    return load_codec_file(_verified_path(f"model {name!r} (weights {entry.weights.sha256[:16]})", entry.weights))


@lru_cache(maxsize=4)
def _load_model(name: str, prior_file: WeightsFile | None) -> LoadedModel:
    entry = MODELS[name]
    codec = load_codec(name)
    weights_hash = bytes.fromhex(entry.weights.sha256)[:HASH_SIZE]
    if prior_file is None:
        return LoadedModel(name, codec, weights_hash)
    prior_path = _verified_path(f"context prior {prior_file.sha256[:16]} of model {name!r}", prior_file)
    prior = _fitting_prior(prior_path, prior_file.sha256, codec, f"the context prior of model {name!r}")
    if entry.rdo_lambdas and len(entry.rdo_lambdas) != codec.config.stages:
        raise ValueError(f"model {name!r} needs one rdo λ per stage ({codec.config.stages}), has {len(entry.rdo_lambdas)}")
    if any(not 1 <= count <= codec.config.stages for count, _ in entry.quality_points):
        raise ValueError(f"model {name!r} has a quality point outside its {codec.config.stages} stages")
    return LoadedModel(
        name,
        codec,
        weights_hash,
        prior,
        bytes.fromhex(prior_file.sha256)[:HASH_SIZE],
        entry.rdo_lambdas,
        entry.quality_points,
    )


def describe_models() -> list[dict]:
    """Every zoo model, shipped and retired (for `vqcodec models`).

    Returns:
        One dict per model: name, default (bool), retired (bool), sha256 of its codec
        weights, path, bytes and stages (None where the file is not installed), and for a
        retired model whose file is missing, `install`: how to get it.
    """
    rows = []
    for name, entry in MODELS.items():
        path = _locate(entry.weights)
        stages = None
        if path is not None:
            with safe_open(str(path), framework="pt") as handle:
                stages = CodecConfig.from_json((handle.metadata() or {})["config"]).stages
        row = {
            "name": name,
            "default": name == DEFAULT_MODEL,
            "retired": entry.weights.retired_after is not None,
            "sha256": entry.weights.sha256,
            "path": None if path is None else str(path),
            "bytes": None if path is None else path.stat().st_size,
            "stages": stages,
            "description": entry.description,
        }
        if path is None and entry.weights.retired_after is not None:
            row["install"] = _install_hint(f"model {name!r}", entry.weights)
        rows.append(row)
    return rows
