"""The only user of constriction: rANS streams of codebook indices, one stream per stage.

A stage's stream holds its symbols in groups, each group with its own probabilities: one
shared row (the static prior) or one row per symbol (the context prior). Probabilities must
come from integer frequencies so that encoder and decoder see bit-identical values.
"""

from __future__ import annotations

import constriction
import numpy as np

# constriction is a compiled extension whose submodules are attributes, not importable modules.
Categorical = constriction.stream.model.Categorical
AnsCoder = constriction.stream.stack.AnsCoder

# `perfect=False` is stated explicitly: constriction's default (`perfect=True`) is ~1000× slower.
_ROW_MODELS = Categorical(perfect=False)


def probabilities_from_frequencies(frequencies: np.ndarray) -> np.ndarray:
    """Integer frequencies `[..., K]` → float64 probabilities, C-contiguous.

    One exact IEEE division per entry, so every machine computes the same bits.
    """
    frequencies = np.asarray(frequencies, dtype=np.float64)
    return np.ascontiguousarray(frequencies / frequencies.sum(axis=-1, keepdims=True))


def _symbols(symbols: np.ndarray) -> np.ndarray:
    # constriction reads Fortran-ordered or non-int32 arrays wrongly or not at all.
    return np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)


class StageEncoder:
    """Writes the groups of one stage as one stream.

    ANS is a stack: groups must be pushed last group first, and `StageDecoder` then reads
    them first group first. Each group is coded as soon as it is pushed, so only one
    group's probabilities are ever held in memory.
    """

    def __init__(self) -> None:
        self._coder = AnsCoder()

    def push(self, symbols: np.ndarray, probabilities: np.ndarray) -> None:
        """symbols `[n]` in [0,K); probabilities `[K]` (shared) or `[n, K]` (one row each)."""
        symbols = _symbols(symbols)
        if symbols.size == 0:
            return
        probabilities = np.ascontiguousarray(probabilities, dtype=np.float64)
        if probabilities.ndim == 1:
            self._coder.encode_reverse(symbols, Categorical(probabilities, perfect=False))
        else:
            self._coder.encode_reverse(symbols, _ROW_MODELS, probabilities)

    def finish(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class StageDecoder:
    """Reads the groups of one stage back, in the order they were added to `StageEncoder`."""

    def __init__(self, payload: bytes) -> None:
        if len(payload) % 4:
            raise ValueError(f"stage payload of {len(payload)} bytes is not a whole number of 32-bit words")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        if words.size and words[-1] == 0:  # constriction's own message would not say where
            raise ValueError("stage payload ends in a zero word, which no encoder writes: the file is corrupt")
        self._coder = AnsCoder(words)

    def read(self, count: int, probabilities: np.ndarray) -> np.ndarray:
        """Decode `count` symbols; probabilities as in `StageEncoder.push`. Returns int64 `[count]`."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        probabilities = np.ascontiguousarray(probabilities, dtype=np.float64)
        if probabilities.ndim == 1:
            decoded = self._coder.decode(Categorical(probabilities, perfect=False), count)
        else:
            decoded = self._coder.decode(_ROW_MODELS, probabilities)
        return np.asarray(decoded, dtype=np.int64)

    def exhausted(self) -> bool:
        """True when every word of the payload has been consumed.

        After the last symbol that is a clean finish (a cheap corruption check). Before it,
        every further symbol decodes as 0 without reading anything: the coder starts from an
        empty state, in which the encoder codes index 0 in no bits at all.
        """
        return self._coder.is_empty()
