"""Context-prior files: the weights, the config and the integer tables, xz-compressed.

Format-frozen: a zoo model's prior is identified in streams by the sha256 of its file.

Version 4 stores every tensor as the coding path reads it, in an integer dtype: the tables
(int8 pointwise mutual information, integer transition logits), and the weights as int8
values with their power-of-two scales (`integer_state`). The coding path never reads more
of a weight than that, so a prior written and read back codes every stream bit for bit as
before, and float32 weights took four times the room for nothing. The safetensors bytes are
xz-compressed: the tables are low-entropy. Version 3 (integer tables, float32 weights) and
version 2 (plain safetensors, float32 transition) still load, so retired priors stay usable.
"""

from __future__ import annotations

import json
import lzma
import struct
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError

from vqcodec.files import write_atomic
from vqcodec.reproducible import safetensors_bytes

from .context import GAIN_BITS, NEIGHBOUR_OFFSETS, ContextPrior, PriorConfig
from .fixedpoint import FRAC_BITS_RANGE, QuantConv, QuantHead, quantize_table

FORMAT = "vqcodec-context-prior"
FORMAT_VERSION = 4  # 2: neighbour pair tables; 3: integer transition table, xz-compressed file; 4: integer weights
READABLE_VERSIONS = ("2", "3", "4")
XZ_MAGIC = b"\xfd7zXZ\x00"
# The largest a compressed file may inflate to: a K=1024, 16-stage prior is about 90 MB.
MAX_INFLATED = 1 << 28

INT8_LOW, INT8_HIGH = -128, 127
WEIGHT_SHRINK = 1 - 2**-10  # `parameters_from_integers`


def integer_transition(prior: ContextPrior) -> torch.Tensor:
    """`[S-1, K+1, K]` int8: the transition logits as the coding path rounds them, each row
    shifted so that its largest entry is 127.

    Exact for coding: a row's logits all get the same shift, and frequencies depend only on
    each logit's distance below the row's largest. Entries more than 255 units (16 nats at
    the default logit_bits) below their row's largest are raised to that distance; such
    symbols are already at the coder's smallest frequency.
    """
    table = prior._integer_transition(prior.transition.detach())
    return (table - table.amax(dim=2, keepdim=True) + INT8_HIGH).clamp(INT8_LOW, INT8_HIGH).to(torch.int8)


def integer_state(prior: ContextPrior) -> dict[str, torch.Tensor]:
    """The prior's state in integer dtypes, as its coding path rounds it: token embeddings and
    queries (int8, scale 2**-act_bits), every layer's int8 weights, accumulator-unit bias
    (int32) and power-of-two frac bits per output (`LAYER.frac_bits`, int8), the gains, the
    transition tables (`integer_transition`) and the neighbour and exp tables as they are."""
    act_bits = prior.config.act_bits
    with torch.no_grad():
        state = dict(prior.state_dict())  # the buffers; every parameter is replaced below
        state["embedding"] = quantize_table(prior.embedding, act_bits).to(torch.int8)
        state["query"] = quantize_table(prior.query, act_bits).to(torch.int8)
        state["neighbour_gain"] = prior.integer_gains().to(torch.int8)
        state["transition"] = integer_transition(prior)
        for name, layer in prior.named_modules():
            if isinstance(layer, QuantConv):
                weight, bias, bits = layer.integer_weights()
            elif isinstance(layer, QuantHead):
                per_stage = [layer.integer_weights(stage) for stage in range(prior.config.stages)]
                weight, bias, bits = (torch.stack(parts) for parts in zip(*per_stage, strict=True))
            else:
                continue
            state[f"{name}.weight"] = weight.to(torch.int8)
            state[f"{name}.bias"] = bias.to(torch.int32)
            state[f"{name}.frac_bits"] = bits.to(torch.int8)
    return {key: value.detach().cpu().contiguous() for key, value in state.items()}


def parameters_from_integers(state: dict[str, torch.Tensor], config: PriorConfig) -> dict[str, torch.Tensor]:
    """`integer_state`'s tensors back to a state dict whose parameters the coding path rounds
    to the very integers stored: embeddings, gains and biases are the integer times its
    power-of-two scale, exactly; weights that times (1 − 2**-10), also exact in float32.

    The shrink is what brings a layer's frac bits back: `frac_bits` picks the scale that puts
    a row's peak in [63.5, 127), so a row whose largest entry rounded to 127 would, read back
    as 127 exactly, get half the scale and lose its last bit. 127·(1 − 2**-10) stays below
    127, 64·(1 − 2**-10) above 63.5, and every entry still rounds to itself.
    """
    state = dict(state)
    unit = 2.0**-config.act_bits
    state["embedding"] = state["embedding"].float() * unit
    state["query"] = state["query"].float() * unit
    state["neighbour_gain"] = state["neighbour_gain"].float() * 2.0**-GAIN_BITS
    for key in [key for key in state if key.endswith(".frac_bits")]:
        layer, bits = key.removesuffix(".frac_bits"), state.pop(key)
        if bits.numel() and not FRAC_BITS_RANGE[0] <= int(bits.min()) <= int(bits.max()) <= FRAC_BITS_RANGE[1]:
            raise ValueError(f"{key} outside {list(FRAC_BITS_RANGE)}, which no prior writes")
        scale = torch.ldexp(torch.ones(bits.shape), -bits.int())  # [outputs], exact powers of two
        weight = state[f"{layer}.weight"]
        per_row = (scale * WEIGHT_SHRINK).view(*bits.shape, *[1] * (weight.ndim - bits.ndim))
        state[f"{layer}.weight"] = weight.float() * per_row
        state[f"{layer}.bias"] = state[f"{layer}.bias"].float() * scale * unit
    return state


def compact_neighbour_tables(prior: ContextPrior, step: int) -> None:
    """Make the neighbour tables cheap to store, in place: both diagonal offsets share one
    table (their average), and every entry is rounded to a multiple of `step`.

    Lossy: measured on Kodak in experiments/lean-prior/. Pair counts average about three
    per cell, so the last bits of an entry are mostly counting noise.
    """
    if step < 1:
        raise ValueError(f"step must be ≥ 1, got {step}")
    diagonals = [d for d, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS) if dy and dx]
    tables = prior.neighbour.float()  # [S, D, K, K]
    tables[:, diagonals] = tables[:, diagonals].mean(dim=1, keepdim=True).round()
    prior.neighbour.copy_(rounded_to_step(tables, step))


def rounded_to_step(tables: torch.Tensor, step: int) -> torch.Tensor:
    """int8 neighbour-table entries (held in any dtype) rounded to multiples of `step`, within ±127."""
    return (torch.round(tables.float() / step) * step).clamp(-INT8_HIGH, INT8_HIGH).to(torch.int8)


def save_prior_file(prior: ContextPrior, path: str | Path, description: str = "") -> None:
    """Write the prior (weights, integer tables, config in the metadata) as an
    xz-compressed safetensors file, atomically."""
    state = integer_state(prior)
    metadata = {"format": FORMAT, "version": str(FORMAT_VERSION), "config": prior.config.to_json(), "description": description}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(path), lzma.compress(safetensors_bytes(state, metadata), preset=6))


def load_prior_file(path: str | Path) -> ContextPrior:
    """Rebuild a prior written by `save_prior_file` (strict load), in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a context prior of a readable format version, or is damaged.
    """
    data = Path(path).read_bytes()
    try:
        if data.startswith(XZ_MAGIC):
            inflater = lzma.LZMADecompressor()
            data = inflater.decompress(data, max_length=MAX_INFLATED)
            if not inflater.eof:
                raise ValueError("truncated, or inflates past the size limit")
        metadata = _metadata(data)
        state = safetensors.torch.load(data)
    except (lzma.LZMAError, SafetensorError, ValueError) as error:
        raise ValueError(f"{path} is not a {FORMAT} file: {error}") from error
    version = metadata.get("version")
    if metadata.get("format") != FORMAT or version not in READABLE_VERSIONS:
        raise ValueError(f"{path} is not a {FORMAT} file of version {' or '.join(READABLE_VERSIONS)}")
    try:
        config = PriorConfig.from_json(metadata["config"])
        if version == "4":
            state = parameters_from_integers(state, config)
        if version != "2":  # integer logits back to the parameter's scale, exactly
            state["transition"] = state["transition"].float() * 2.0**-config.logit_bits
        with torch.inference_mode(False):  # inference tensors have no version counter, which the prior's caches key on
            prior = ContextPrior(config)
            # load_state_dict would cast an integer tensor into a float parameter silently
            wrong_kind = [
                key
                for key, value in prior.state_dict().items()
                if key in state and value.is_floating_point() != state[key].is_floating_point()
            ]
            if wrong_kind:
                raise ValueError(f"integer and float tensors swapped: {', '.join(wrong_kind)}")
            prior.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # RuntimeError: tensors that do not fit
        raise ValueError(f"{path} is a damaged {FORMAT} file: {error}") from error
    return prior.eval()


def _metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of safetensors bytes (safetensors' own loader drops it)."""
    if len(data) < 8:
        raise ValueError("too short for safetensors")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError("header runs past the end")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable header: {error}") from error
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    return metadata if isinstance(metadata, dict) else {}
