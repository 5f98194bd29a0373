"""Which model and prior decode a stream: the zoo model its header names (shipped, or
retired and installed through VQCODEC_WEIGHTS), or the weights file a caller names, each
checked against the hashes the header records."""

from __future__ import annotations

from pathlib import Path

from vqcodec import zoo
from vqcodec.bitstream import BitstreamError, Header
from vqcodec.entropy.grid_coding import Prior


def model_for_stream(
    header: Header, model: str | Path | None = None, prior_file: str | Path | None = None
) -> tuple[zoo.LoadedModel, Prior]:
    """The model and prior that wrote `header`'s stream (by default the zoo model it names;
    `model` and `prior_file` as in `compress`), or a BitstreamError saying why not (for a
    retired model or prior: how to install it)."""
    if zoo.is_model_file(model):
        assert model is not None
        loaded = zoo.load_model_file(model, prior_file)
    else:
        assert not isinstance(model, Path)  # every Path names a weights file
        loaded = _zoo_model(header, model or header.model_id, prior_file)
    if loaded.weights_hash != header.weights_hash:
        raise BitstreamError(
            f"weights hash mismatch: the file was written by weights {header.weights_hash.hex()} of "
            f"model {header.model_id!r}, {model} has weights {loaded.weights_hash.hex()}"
        )
    if header.prior == "context" and loaded.context_prior is None:
        raise BitstreamError(
            f"the file was coded with context prior {header.prior_hash.hex()}, which {model} does not "
            "ship: give its file as prior_file="
        )
    if header.prior == "context" and loaded.prior_hash != header.prior_hash:
        raise BitstreamError(
            f"context prior hash mismatch: the file was coded with prior {header.prior_hash.hex()}, "
            f"prior_file {prior_file} is {loaded.prior_hash.hex()}"
        )
    config = loaded.codec.config
    if (header.stride, header.codebook_size) != (config.stride, config.codebook_size) or header.stages > config.stages:
        raise BitstreamError(f"header does not match model {header.model_id!r} (stride, codebook size or stages)")
    if header.prior == "static":
        return loaded, loaded.codec.prior
    assert loaded.context_prior is not None  # checked above
    return loaded, loaded.context_prior


def _zoo_model(header: Header, name: str, prior_file: str | Path | None) -> zoo.LoadedModel:
    """Zoo model `name` for `header`, its hash checked before any file is looked for (a
    retired model's file need not be installed to learn that it would not fit)."""
    if name not in zoo.MODELS:
        raise BitstreamError(
            f"unknown model {name!r}: this installation has {', '.join(zoo.installed_models())}; "
            "a file written with a weights file decodes with model= that file"
        )
    if name != header.model_id:
        raise BitstreamError(f"the file was written by model {header.model_id!r}, not {name!r}")
    entry = zoo.MODELS[name]
    if bytes.fromhex(entry.weights.sha256)[: len(header.weights_hash)] != header.weights_hash:
        raise BitstreamError(
            f"weights hash mismatch: the file was written by weights {header.weights_hash.hex()} of model "
            f"{name!r}, this version of vqcodec knows {entry.weights.sha256[:16]}; if a weights file wrote it, "
            "decode with model= that file"
        )
    try:
        if prior_file is not None:
            return zoo.load(name, prior_file)
        return zoo.load_model(name, None if header.prior == "static" else zoo.find_prior(name, header.prior_hash))
    except zoo.NotInstalled as error:
        raise BitstreamError(f"cannot decode this file: {error}") from error
