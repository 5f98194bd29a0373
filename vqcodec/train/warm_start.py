"""Starting a phase from an earlier VQ-VAE's weights (`init_from`).

The realism decoder's phase takes the VQ-VAE as it is. A VQ-VAE phase may also grow it, in
two ways that each leave the grown model computing exactly what the source did until
training moves it:
- residual stages added after the trained ones, which start from k-means of their residuals
  on the first batch as every stage of a fresh run does;
- residual blocks added at the end of the encoder's stacks, which start as the identity
  (`ResidualBlock` zero-initialises its last conv).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vqcodec.model import VQCodec
from vqcodec.model.config import CodecConfig
from vqcodec.zoo import load_codec_file

from .checkpoint import config_from_checkpoint, load_checkpoint


def load_vqvae(path: str | Path) -> VQCodec:
    """The stage-1 codec from a `vqvae` training checkpoint (`latest.pt`) or exported weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init_from not found: {path}")
    if path.suffix == ".safetensors":
        return load_codec_file(path)
    state = load_checkpoint(path)
    source = config_from_checkpoint(state)
    if source.phase != "vqvae":
        raise ValueError(f"init_from must be a vqvae checkpoint, {path} is phase {source.phase!r}")
    model = VQCodec(source.model)
    model.load_state_dict(state["model"], strict=True)
    return model


def grown(source: VQCodec, target: CodecConfig) -> VQCodec:
    """A fidelity-only codec of architecture `target` holding `source`'s weights: `target`
    may differ from `source.config` only by more stages and more encoder blocks. The added
    stages are left uninitialised (k-means on the first training batch), and so is the
    static prior; the added blocks are the identity."""
    old = source.config
    same_but_growth = dataclasses.replace(target, stages=old.stages, encoder_blocks=old.encoder_blocks)
    fewer_blocks = any(new < kept for new, kept in zip(target.encoder_blocks, old.encoder_blocks, strict=True))
    if same_but_growth != old or target.stages < old.stages or fewer_blocks:
        raise ValueError(
            f"init_from holds model {old}; a VQ-VAE run can start from it only with the same "
            f"architecture and at least as many stages and encoder blocks, got {target}"
        )
    model = VQCodec(target)
    # The static prior is left out: its table has a row per stage, and `export-model` fits it
    # on the finished model's indices anyway.
    kept = {k: v for k, v in source.state_dict().items() if not k.startswith(("decoders.realism.", "prior."))}
    model.load_state_dict({**model.state_dict(), **kept}, strict=True)
    return model
