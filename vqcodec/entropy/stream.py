"""Index grids ↔ per-stage payloads, for any prior that offers `groups` and
`group_frequencies` (the static prior and the context prior both do).

Stage s is coded from stages < s only, so its payload never depends on later stages: a file
holding the first n payloads decodes at n stages.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from .coder import StageDecoder, StageEncoder, probabilities_from_frequencies


class Prior(Protocol):
    def groups(self, stages: int, h: int, w: int) -> list[tuple[int, np.ndarray]]: ...

    def group_frequencies(self, tokens: np.ndarray, known: np.ndarray, stage: int, mask: np.ndarray) -> np.ndarray: ...


# Positions whose frequencies are computed at once. A row costs about 40·K bytes on the way
# to probabilities, so this bounds the peak near 100 MB for any image size; blocks this small
# also stay in cache, which made Kodak-sized grids decode faster than one block per group.
CHUNK_ROWS = 2048


def _chunks(mask: np.ndarray, rows: int) -> list[np.ndarray]:
    """Split `mask`'s True positions, in row-major order, into masks of at most `rows` each.

    A group's frequencies depend only on tokens known before the group, so coding it chunk by
    chunk yields the very same stream as coding it at once."""
    flat = np.flatnonzero(mask)
    chunks = []
    for start in range(0, flat.size, rows):
        chunk = np.zeros(mask.size, dtype=bool)
        chunk[flat[start : start + rows]] = True
        chunks.append(chunk.reshape(mask.shape))
    return chunks


def encode_grid(prior: Prior, indices: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> list[bytes]:
    """indices `[S, h, w]` int → one payload per stage."""
    stages, h, w = indices.shape
    known_before, known = [], np.zeros(indices.shape, dtype=bool)
    chunks = []
    for stage, mask in prior.groups(stages, h, w):
        known_before.append(known.copy())
        chunks.append([(stage, chunk) for chunk in _chunks(mask, chunk_rows)])
        known[stage] |= mask
    encoders = [StageEncoder() for _ in range(stages)]
    # Last chunk first (ANS is a stack): the decoder then meets them in coding order.
    for group_chunks, known in zip(reversed(chunks), reversed(known_before)):
        for stage, chunk in reversed(group_chunks):
            frequencies = prior.group_frequencies(indices, known, stage, chunk)
            encoders[stage].push(indices[stage][chunk], probabilities_from_frequencies(frequencies))
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
        for chunk in _chunks(mask, chunk_rows):  # all read before `known` grows: same frequencies as the encoder's
            frequencies = prior.group_frequencies(tokens, known, stage, chunk)
            symbols = decoders[stage].read(int(chunk.sum()), probabilities_from_frequencies(frequencies))
            if symbols.size and (symbols.min() < 0 or symbols.max() >= codebook_size):
                raise ValueError(f"stage {stage} payload decodes to indices outside [0, {codebook_size})")
            tokens[stage][chunk] = symbols
        known[stage] |= mask
    for stage, decoder in enumerate(decoders):
        if not decoder.finished_cleanly():
            raise ValueError(f"stage {stage} payload has data left over after decoding: the file is corrupt")
    return tokens
