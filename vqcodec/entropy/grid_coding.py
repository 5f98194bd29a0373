"""Index grids ↔ per-stage payloads, for any prior that offers `groups` and
`group_coder` (the static prior and the context prior both do).

Stage s is coded from stages < s only, so its payload never depends on later stages: a file
holding the first n payloads decodes at n stages.

The coder codes index 0 in no bits while its state is still empty, so the indices a stage
ends with (in coding order), if they are zeros, cost nothing, and its decoder runs out of
data that many indices before the end of the grid. A decoder cannot tell such a free tail
from a header that claims a larger image than its payload holds, so it accepts a short one
only: at most FREE_TAIL_LIMIT indices, and never a whole stage (an empty payload).
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


# Indices a stage may leave to its coder's empty state. A grid region of one colour can map to
# codeword 0, so real images end in short runs of zeros; 4096 indices are a 512×512-pixel
# region at stride 8, and the most a payload lets a decoder do without data.
FREE_TAIL_LIMIT = 4096


def free_tail_allowance(positions: int) -> int:
    """Trailing zero indices a stage of `positions` indices may code in no bits: never all."""
    return min(FREE_TAIL_LIMIT, positions - 1)


def trailing_zeros(symbols: np.ndarray, run_before: int = 0) -> int:
    """Length of the run of zeros `symbols` ends with; `run_before` is the run that ended the
    symbols before them (to count a run across blocks)."""
    nonzero = np.flatnonzero(symbols)
    return run_before + symbols.size if nonzero.size == 0 else symbols.size - 1 - int(nonzero[-1])


def coding_order(prior: Prior, stages: int, h: int, w: int) -> list[np.ndarray]:
    """Per stage, every flat (row-major) position of the `[h, w]` grid in coding order."""
    order: list[list[np.ndarray]] = [[] for _ in range(stages)]
    for stage, mask in prior.groups(stages, h, w):
        order[stage].append(np.flatnonzero(mask))
    return [np.concatenate(positions) for positions in order]


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


def decode_grid(
    prior: Prior, payloads: list[bytes], h: int, w: int, codebook_size: int, chunk_rows: int = CHUNK_ROWS
) -> np.ndarray:
    """Payloads of the first n stages → indices `[n, h, w]` int64.

    Raises ValueError when a payload decodes to out-of-range symbols, leaves unread words, or
    runs out before the last `free_tail_allowance` indices of its grid (checked before each
    block, so a header that claims far more than its payload holds fails at once).
    """
    stages = len(payloads)
    tokens = np.zeros((stages, h, w), dtype=np.int64)
    known = np.zeros((stages, h, w), dtype=bool)
    decoders = [StageDecoder(payload) for payload in payloads]
    allowance = free_tail_allowance(h * w)
    remaining, zero_run = [h * w] * stages, [0] * stages

    def check_not_dry(stage: int) -> None:  # before any work on what follows
        if decoders[stage].exhausted() and remaining[stage] > allowance:
            raise _ran_dry(stage, remaining[stage], h, w, allowance)

    for stage, mask in prior.groups(stages, h, w):
        check_not_dry(stage)
        frequencies_at = prior.group_coder(tokens, known, stage)  # reads only tokens known before the group
        flat_tokens = tokens[stage].reshape(-1)  # a view: writes land in `tokens`
        for block in position_blocks(mask, chunk_rows):
            check_not_dry(stage)
            symbols = decoders[stage].read(block.size, probabilities_from_frequencies(frequencies_at(block)))
            if symbols.size and (symbols.min() < 0 or symbols.max() >= codebook_size):
                raise ValueError(f"stage {stage + 1} payload decodes to indices outside [0, {codebook_size})")
            flat_tokens[block] = symbols
            remaining[stage] -= block.size
            zero_run[stage] = trailing_zeros(symbols, zero_run[stage])
        known[stage] |= mask
    for stage, decoder in enumerate(decoders):
        if not decoder.exhausted():
            raise ValueError(f"stage {stage + 1} payload has data left over after decoding: the file is corrupt")
        # A payload that decodes cleanly is exactly what the encoder writes for these indices,
        # so its trailing zeros are exactly the indices it leaves uncoded.
        if zero_run[stage] > allowance:
            raise _ran_dry(stage, zero_run[stage], h, w, allowance)
    return tokens


def _ran_dry(stage: int, uncoded: int, h: int, w: int, allowance: int) -> ValueError:
    return ValueError(
        f"stage {stage + 1} payload runs out {uncoded} indices before the end of its {h}×{w} grid "
        f"(at most {allowance} may be left uncoded): the file is corrupt, or its header claims "
        "a larger image than its data holds"
    )
