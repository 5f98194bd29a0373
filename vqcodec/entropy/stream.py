"""Index grids ↔ per-stage payloads, for any prior that offers `groups` and
`group_coder` (the static prior and the context prior both do).

Stage s is coded from stages < s only, so its payload never depends on later stages: a file
holding the first n payloads decodes at n stages.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from .coder import StageDecoder, StageEncoder, probabilities_from_frequencies


class Prior(Protocol):
    def groups(self, stages: int, h: int, w: int) -> list[tuple[int, np.ndarray]]: ...

    def group_coder(self, tokens: np.ndarray, known: np.ndarray, stage: int) -> Callable[[np.ndarray], np.ndarray]: ...


# Positions whose frequencies are computed at once. A row costs about 40·K bytes on the way
# to probabilities, so this bounds the peak near 100 MB for any image size; blocks this small
# also stay in cache, which made Kodak-sized grids decode faster than one block per group.
CHUNK_ROWS = 2048


def position_blocks(mask: np.ndarray, rows: int) -> list[np.ndarray]:
    """`mask`'s True positions as flat (row-major) indices, in blocks of at most `rows`.

    A group's frequencies depend only on tokens known before the group, so coding it block by
    block yields the very same stream as coding it at once."""
    flat = np.flatnonzero(mask)
    return [flat[start : start + rows] for start in range(0, flat.size, rows)]


def encode_grid(prior: Prior, indices: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> list[bytes]:
    """indices `[S, h, w]` int → one payload per stage."""
    stages = indices.shape[0]
    groups, known = [], np.zeros(indices.shape, dtype=bool)
    for stage, mask in prior.groups(*indices.shape):
        groups.append((stage, known.copy(), position_blocks(mask, chunk_rows)))
        known[stage] |= mask
    encoders = [StageEncoder() for _ in range(stages)]
    # Last block first (ANS is a stack): the decoder then meets them in coding order.
    for stage, known_before, blocks in reversed(groups):
        frequencies_at = prior.group_coder(indices, known_before, stage)
        for block in reversed(blocks):
            encoders[stage].push(indices[stage].reshape(-1)[block], probabilities_from_frequencies(frequencies_at(block)))
    return [encoder.finish() for encoder in encoders]


def decode_grid(prior: Prior, payloads: list[bytes], h: int, w: int, codebook_size: int,
                chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Payloads of the first n stages → indices `[n, h, w]` int64.

    Raises ValueError when a payload decodes to out-of-range symbols or leaves unread words.
    """
    stages = len(payloads)
    tokens = np.zeros((stages, h, w), dtype=np.int64)
    known = np.zeros((stages, h, w), dtype=bool)
    decoders = [StageDecoder(payload) for payload in payloads]
    for stage, mask in prior.groups(stages, h, w):
        frequencies_at = prior.group_coder(tokens, known, stage)  # reads only tokens known before the group
        flat_tokens = tokens[stage].reshape(-1)  # a view: writes land in `tokens`
        for block in position_blocks(mask, chunk_rows):
            symbols = decoders[stage].read(block.size, probabilities_from_frequencies(frequencies_at(block)))
            if symbols.size and (symbols.min() < 0 or symbols.max() >= codebook_size):
                raise ValueError(f"stage {stage} payload decodes to indices outside [0, {codebook_size})")
            flat_tokens[block] = symbols
        known[stage] |= mask
    for stage, decoder in enumerate(decoders):
        if not decoder.finished_cleanly():
            raise ValueError(f"stage {stage} payload has data left over after decoding: the file is corrupt")
    return tokens
