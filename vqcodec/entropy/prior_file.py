"""Context-prior files: the weights, the config and the integer tables, xz-compressed.

Format-frozen: a zoo model's prior is identified in streams by the sha256 of its file.

Version 3 stores every integer table in an integer dtype and compresses the safetensors
bytes with xz: the neighbour tables (int8 pointwise mutual information) and the transition
tables (integer logits) are low-entropy, so a prior that took 30 MB as float32/int8 takes
about a quarter of that. Version-2 files (plain safetensors, float32 transition) still load,
so retired priors stay usable.
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

from .context import NEIGHBOUR_OFFSETS, ContextPrior, PriorConfig

FORMAT = "vqcodec-context-prior"
FORMAT_VERSION = 3  # 2: neighbour pair tables; 3: integer transition table, xz-compressed file
READABLE_VERSIONS = ("2", "3")
XZ_MAGIC = b"\xfd7zXZ\x00"
# The largest a version-3 file may inflate to: a K=1024, 16-stage prior is about 90 MB.
MAX_INFLATED = 1 << 28

INT8_LOW, INT8_HIGH = -128, 127


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
    state = {key: value.detach().cpu().contiguous() for key, value in prior.state_dict().items()}
    state["transition"] = integer_transition(prior).cpu().contiguous()
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
        if version != "2":  # integer logits back to the parameter's scale, exactly
            state["transition"] = state["transition"].float() * 2.0**-config.logit_bits
        with torch.inference_mode(False):  # inference tensors have no version counter, which the prior's caches key on
            prior = ContextPrior(config)
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
