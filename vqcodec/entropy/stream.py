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


def encode_grid(prior: Prior, indices: np.ndarray) -> list[bytes]:
    """indices `[S, h, w]` int → one payload per stage."""
    stages, h, w = indices.shape
    groups = prior.groups(stages, h, w)
    known_before, known = [], np.zeros(indices.shape, dtype=bool)
    for stage, mask in groups:
        known_before.append(known.copy())
        known[stage] |= mask
    encoders = [StageEncoder() for _ in range(stages)]
    # Last group first (ANS is a stack): the decoder then meets the groups in coding order.
    for (stage, mask), known in zip(reversed(groups), reversed(known_before)):
        frequencies = prior.group_frequencies(indices, known, stage, mask)
        encoders[stage].push(indices[stage][mask], probabilities_from_frequencies(frequencies))
    return [encoder.finish() for encoder in encoders]


def decode_grid(prior: Prior, payloads: list[bytes], h: int, w: int, codebook_size: int) -> np.ndarray:
    """Payloads of the first n stages → indices `[n, h, w]` int64.

    Raises ValueError when a payload decodes to out-of-range symbols or leaves unread words.
    """
    stages = len(payloads)
    tokens = np.zeros((stages, h, w), dtype=np.int64)
    known = np.zeros((stages, h, w), dtype=bool)
    decoders = [StageDecoder(payload) for payload in payloads]
    for stage, mask in prior.groups(stages, h, w):
        frequencies = prior.group_frequencies(tokens, known, stage, mask)
        symbols = decoders[stage].read(int(mask.sum()), probabilities_from_frequencies(frequencies))
        if symbols.size and (symbols.min() < 0 or symbols.max() >= codebook_size):
            raise ValueError(f"stage {stage} payload decodes to indices outside [0, {codebook_size})")
        tokens[stage][mask] = symbols
        known[stage] |= mask
    for stage, decoder in enumerate(decoders):
        if not decoder.finished_cleanly():
            raise ValueError(f"stage {stage} payload has data left over after decoding: the file is corrupt")
    return tokens
