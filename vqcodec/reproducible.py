"""safetensors bytes that depend only on the tensors and the metadata.

The zoo names a weights or prior file by its sha256, so writing the same model twice must
give the same bytes. safetensors writes the header's JSON objects in hash-map order, which
changes from one call to the next; the tensor data is laid out the same every time.
"""

from __future__ import annotations

import json
import struct

import safetensors.torch
import torch


def safetensors_bytes(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """`safetensors.torch.save(state, metadata)` with the header's keys sorted."""
    data = safetensors.torch.save(state, metadata=metadata)
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    # The same compact JSON as the library's, so it never comes out longer; the library pads
    # its header with spaces to keep the data aligned, and so does this.
    ordered = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(ordered) > length:
        raise AssertionError(f"sorted safetensors header grew from {length} to {len(ordered)} bytes")
    return data[:8] + ordered.ljust(length) + data[8 + length :]
