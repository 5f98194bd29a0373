"""Starting a phase from an earlier VQ-VAE's weights (`init_from`).

The realism decoder's phase takes the VQ-VAE as it is. A VQ-VAE phase may also grow it, in
ways that each leave the grown networks computing exactly what the source's did until
training moves them:
- residual stages added after the trained ones, which start from k-means of their residuals
  on the first batch as every stage of a fresh run does (all stages, with a new codebook
  size);
- residual blocks added at the end of any of the four stacks, which start as the identity
  (`ResidualBlock` zero-initialises its last conv);
- wider networks, whose added channels no trained channel reads until training moves them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from vqcodec import zoo
from vqcodec.model import VQCodec
from vqcodec.model.config import CodecConfig

from .checkpoint import config_from_checkpoint, load_checkpoint

# What growth may change; everything else in the architecture must match.
GROWABLE = ("stages", "codebook_size", "width_fine", "width_coarse", "encoder_blocks", "decoder_blocks")


def load_vqvae(init: str | Path) -> VQCodec:
    """The stage-1 codec from a `vqvae` training checkpoint (`latest.pt`), exported weights or
    the name of an installed model (its weights checked as for coding)."""
    path = Path(init)
    if not path.is_file():
        if str(init) in zoo.MODELS:
            return zoo.load_codec(str(init))
        raise FileNotFoundError(
            f"init_from not found: {init} (a latest.pt, a .safetensors file or a model name: {', '.join(zoo.installed_models())})"
        )
    if path.suffix == ".safetensors":
        return zoo.load_codec_file(path)
    state = load_checkpoint(path)
    source = config_from_checkpoint(state)
    if source.phase != "vqvae":
        raise ValueError(f"init_from must be a vqvae checkpoint, {path} is phase {source.phase!r}")
    model = VQCodec(source.model)
    model.load_state_dict(state["model"], strict=True)
    return model


def grown(source: VQCodec, target: CodecConfig) -> VQCodec:
    """A fidelity-only codec of architecture `target` holding `source`'s weights and computing
    exactly what `source` computes until training moves it. `target` may differ from
    `source.config` by more stages, more residual blocks in any stack, wider networks and
    another codebook size; stride and latent dimension must match. Stages that are new, or
    all of them where the codebook size changes, are left uninitialised (k-means on the first
    training batch), and so is the static prior; the added blocks are the identity
    (`ResidualBlock` zero-initialises its last conv) and no trained channel reads the added
    ones (`_widened`)."""
    old = source.config
    kept_shape = dataclasses.replace(target, **{field: getattr(old, field) for field in GROWABLE})
    depths = zip(target.encoder_blocks + target.decoder_blocks, old.encoder_blocks + old.decoder_blocks, strict=True)
    smaller = target.width_fine < old.width_fine or target.width_coarse < old.width_coarse or any(n < o for n, o in depths)
    fewer_stages = target.codebook_size == old.codebook_size and target.stages < old.stages
    if kept_shape != old or smaller or fewer_stages:
        raise ValueError(
            f"init_from holds model {old}; a VQ-VAE run can start from it only with the same stride and "
            f"latent dimension, networks at least as wide and deep, and at least as many stages unless the "
            f"codebook size changes, got {target}"
        )
    model = VQCodec(target)
    # The static prior is left out: its table has a row per stage, and `export-model` fits it
    # on the finished model's indices anyway. Codebooks of another size cannot be kept.
    dropped = ("decoders.realism.", "prior.") + (("quantizer.",) if target.codebook_size != old.codebook_size else ())
    kept = {k: v for k, v in source.state_dict().items() if not k.startswith(dropped)}
    state = model.state_dict()
    model.load_state_dict({**state, **{k: _widened(state[k], v) for k, v in kept.items()}}, strict=True)
    return model


def _widened(fresh: torch.Tensor, trained: torch.Tensor) -> torch.Tensor:
    """`trained` in the leading corner of a tensor shaped like `fresh`. A convolution's added
    inputs get zero weights, so the channels added before it change nothing it computes; its
    added outputs keep their fresh random weights, so those channels carry signal from the
    start and the zero weights that read them get gradients. Leading corners line up through
    the pixel (un)shuffles too: both order channels as channel × position in the block."""
    if fresh.shape == trained.shape:
        return trained
    widened = fresh.clone()
    if widened.ndim == 4:
        widened[:, trained.shape[1] :] = 0
    widened[leading_corner(trained.shape)] = trained
    return widened


def leading_corner(shape: torch.Size) -> tuple[slice, ...]:
    """The index of a trained tensor of `shape` inside the wider tensor growth puts it in."""
    return tuple(slice(0, size) for size in shape)
