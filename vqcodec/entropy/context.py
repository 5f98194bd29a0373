"""Masked-token context prior over residual-VQ index grids `[S, h, w]`, integer-exact.

Tokens are coded in G groups: stage by stage, and inside a stage by a fixed spatial tile
pattern (e.g. a 2×2 "quad" tile gives 4 groups). Every token of a group is predicted from all
tokens of earlier groups — earlier stages everywhere, earlier groups of its own stage around
it. Encoding is one pass per group over known data, decoding is G passes, each parallel
over its group. The same model, trained MaskGIT-style with random masks plus the schedule's
masks, also drives generation and inpainting (`vqcodec.sampling`).

Inference uses only integer-valued arithmetic (`fixedpoint`), so encoder and decoder derive
identical integer frequencies anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fixedpoint import (
    EXP_ONE_BITS,
    INT8_MAX,
    QuantConv,
    QuantHead,
    exp_table,
    floor_scaled,
    max_fan_in,
    quantize_table,
    round_ste,
)

# Coding order inside one tile; the tile repeats over the grid. Group g = positions holding g.
TILES: dict[str, np.ndarray] = {
    "all": np.array([[0]]),
    "checkerboard": np.array([[0, 1], [1, 0]]),
    "quad": np.array([[0, 2], [3, 1]]),
    # 1/16, 1/16, 2/16, 4/16, 8/16 of the grid: the first, context-free group is small.
    "pyramid": np.array([[0, 4, 2, 4], [4, 3, 4, 3], [2, 4, 1, 4], [4, 3, 4, 3]]),
}


# Same-stage neighbours read through pair tables: the neighbour at p+d for each offset d
# below and at p-d (mirror offsets share a table, transposed), i.e. all 8 adjacent positions.
NEIGHBOUR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))
GAIN_BITS = 4  # neighbour-table gains are integers at scale 2**-GAIN_BITS
GAIN_MAX = 1 << (GAIN_BITS + 2)  # gains stay ≤ 4: a larger weight on one neighbour is never useful
# Held while a coding pass fills or reads a prior's one-stage neighbour rows (`_coding_rows`),
# so threads sharing a loaded prior never read rows another is overwriting. Module-level:
# a lock cannot be deep-copied with the prior onto another device.
_CODING_ROWS_LOCK = threading.Lock()


@dataclass(frozen=True)
class PriorConfig:
    """Architecture and fixed-point formats of a context prior.

    Attributes:
        stages: S, residual stages the prior was trained for (it codes any stages ≤ S).
        codebook_size: K, symbols per stage.
        width: channels C of the convolutional trunk.
        blocks: residual blocks (3×3 conv + 1×1 conv) in the trunk.
        schedule: tile name from `TILES` per stage: the spatial coding groups of that stage.
        act_bits: activations are integers at scale 2**-act_bits.
        logit_bits: logits are integers at scale 2**-logit_bits nats.
        logit_max: logits are clamped to ±logit_max.
    """

    stages: int = 4
    codebook_size: int = 1024
    width: int = 48
    blocks: int = 3
    schedule: tuple[str, ...] = ("pyramid", "quad", "quad", "quad")
    act_bits: int = 4
    logit_bits: int = 4
    logit_max: int = 1 << 14

    def __post_init__(self) -> None:
        if not 1 <= self.stages <= 16:
            raise ValueError(f"stages must be in [1, 16], got {self.stages}")
        if not 2 <= self.codebook_size <= (1 << (30 - EXP_ONE_BITS)):
            raise ValueError(f"codebook_size must be in [2, {1 << (30 - EXP_ONE_BITS)}] so frequency rows sum below 2**31")
        if 9 * self.width > max_fan_in() or self.width < 1 or self.blocks < 0:
            raise ValueError(f"width must be in [1, {max_fan_in() // 9}] and blocks ≥ 0, got {self.width}, {self.blocks}")
        if len(self.schedule) != self.stages or any(name not in TILES for name in self.schedule):
            raise ValueError(f"schedule needs one tile name from {sorted(TILES)} per stage, got {self.schedule}")

    def check_fits(self, stages: int, codebook_size: int, name: str) -> None:
        """Raise ValueError unless this prior codes `stages` stages of `codebook_size`
        codewords (a codec's); `name` says whose prior it is."""
        if self.codebook_size != codebook_size or self.stages < stages:
            raise ValueError(
                f"{name} does not fit the codec: it codes {self.stages} stages of {self.codebook_size} "
                f"codewords, the codec has {stages} of {codebook_size}"
            )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PriorConfig:
        fields = json.loads(text)
        fields["schedule"] = tuple(fields["schedule"])
        return cls(**fields)


def group_map(tile: str, h: int, w: int) -> np.ndarray:
    """`[h, w]` int: the coding group of every position under tile pattern `tile`."""
    pattern = TILES[tile]
    reps = (-(-h // pattern.shape[0]), -(-w // pattern.shape[1]))
    return np.tile(pattern, reps)[:h, :w]


def nonzero_positions(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sample, row, column) indices of the True entries of `mask` `[B, h, w]`, row-major."""
    b, i, j = mask.nonzero(as_tuple=True)
    return b, i, j


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(x))), every tensor integer-valued and clamped to int8."""

    def __init__(self, width: int, act_bits: int) -> None:
        super().__init__()
        self.spatial = QuantConv(width, width, 3, act_bits, low=0)
        self.mix = QuantConv(width, width, 1, act_bits, low=-INT8_MAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.mix(self.spatial(x))).clamp(-INT8_MAX, INT8_MAX)

    def at_positions(self, x: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """`forward(x)[where]` `[n, C]` at (sample, row, column) indices, computed only there (eval mode)."""
        inner = self.spatial.at_positions(x, where)[:, None, None, :]
        return (x[where] + self.mix(inner)[:, 0, 0]).clamp(-INT8_MAX, INT8_MAX)


class ContextPrior(nn.Module):
    """Predicts the tokens of one stage at masked positions from every known token."""

    neighbour: torch.Tensor  # [S, D, K, K] int8 pair tables
    exp_table: torch.Tensor  # the fixed exp table the frequencies come from

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        c, s, k = config.width, config.stages, config.codebook_size
        # Row K of each stage's table is the [MASK] symbol; `query` tells the trunk the target stage.
        self.embedding = nn.Parameter(torch.randn(s, k + 1, c) * 0.5)
        self.query = nn.Parameter(torch.zeros(s, c))
        self.blocks = nn.ModuleList(ResidualBlock(c, config.act_bits) for _ in range(config.blocks))
        self.hidden = QuantConv(c, c, 1, config.act_bits, low=0)
        self.head = QuantHead(s, c, k, config.act_bits, config.logit_bits, config.logit_max)
        # transition[s-1][a] = logits of stage s given token a of stage s-1 at the same position
        # (row K: unknown). Residual VQ makes this pair table too sharp for the low-rank trunk.
        self.transition = nn.Parameter(torch.zeros(max(s - 1, 0), k + 1, k))
        # neighbour[s, d][a, x]: pointwise mutual information of token a at p+d and token x at
        # p in stage s, as int8 logits, counted on training grids (`fit_neighbour_tables`).
        # Spatial context of VQ indices is mostly such pair statistics, which a narrow trunk
        # cannot hold for K=1024; the trained gains temper their naive-Bayes sum.
        self.register_buffer("neighbour", torch.zeros(s, len(NEIGHBOUR_OFFSETS), k, k, dtype=torch.int8))
        self.neighbour_gain = nn.Parameter(torch.full((s, len(NEIGHBOUR_OFFSETS)), 0.5))
        self.register_buffer("exp_table", exp_table(config.logit_bits))
        self._derived_cache: dict[str, tuple[tuple[int, int | None], torch.Tensor]] = {}
        self._coding_rows: torch.Tensor | None = None  # `[D, 2, K+1, K]`, one stage's (`_coding_rows_of`)
        self._coding_rows_key: tuple[int, int, int | None] | None = None

    def trunk(
        self, tokens: torch.Tensor, known: torch.Tensor, stage: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Integer features of every position, or only of `positions`.

        Args:
            tokens: `[B, s, h, w]` int64 in [0, K), s ≤ S (missing stages count as unknown).
            known: `[B, s, h, w]` bool; unknown tokens are replaced by [MASK].
            stage: `[B]` int64, the stage each sample predicts.
            positions: `[B, h, w]` bool or None. When given (eval mode), the last block runs
                only there: the coding path needs features only where it predicts.

        Returns:
            `[B, h, w, C]` (channels last) integers in [-127, 127], or `[n, C]` at `positions`.
        """
        x = self._grid_features(tokens, known, stage)
        if positions is not None:
            return self._features_at(x, nonzero_positions(positions))
        return self.blocks[-1](x) if self.blocks else x

    def _grid_features(self, tokens: torch.Tensor, known: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        """`[B, h, w, C]`: the trunk over the whole grid, all blocks but the last. It depends
        only on the known tokens, so a coding group computes it once for all its chunks."""
        k = self.config.codebook_size
        table = quantize_table(self.embedding, self.config.act_bits)  # [S, K+1, C]
        x = quantize_table(self.query, self.config.act_bits)[stage][:, None, None, :]  # [B, 1, 1, C]
        for s in range(tokens.shape[1]):
            symbols = torch.where(known[:, s], tokens[:, s], k)  # [B, h, w]
            x = x + F.embedding(symbols, table[s])  # [B, h, w, C]
        x = x.clamp(-INT8_MAX, INT8_MAX)
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def _features_at(self, x: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """`[n, C]` trunk features at (sample, row, column) indices `where`: the last block
        runs only there."""
        if not self.blocks:
            return x[where]
        last = self.blocks[-1]
        assert isinstance(last, ResidualBlock)
        return last.at_positions(x, where)

    def logits(self, features: torch.Tensor, previous: torch.Tensor, neighbours: torch.Tensor, stage: int) -> torch.Tensor:
        """Integer logits `[n, K]` of positions to predict.

        Args:
            features: `[n, C]` trunk features at those positions.
            previous: `[n]` int64, the stage-1 token there, K where unknown (ignored for stage 0).
            neighbours: `[n, K]` integer logits of the known same-stage neighbours
                (`neighbour_logits`).
            stage: the stage predicted.
        """
        limit = self.config.logit_max
        hidden = self.hidden(features[:, None, None, :])[:, 0, 0]  # a 1×1 conv on [n, 1, 1, C]
        # In place on the head's fresh output: each [n, K] temporary not allocated is a pass
        # over memory saved on the coding path (autograd allows it: no backward reads them).
        logits = self.head(hidden, stage).add_(neighbours)
        if stage > 0:
            if self.training:  # the weights change every step: round just the rows read
                pair = self._integer_transition(self.transition[stage - 1][previous])
            else:  # rounded once, not per group: coding reads only a few rows of it
                pair = self._derived("transition", self.transition, self._integer_transition)[stage - 1][previous]
            logits.add_(pair)
        return logits.clamp_(-limit, limit)

    def _integer_transition(self, transition: torch.Tensor) -> torch.Tensor:
        limit = self.config.logit_max
        return round_ste(transition * (2.0**self.config.logit_bits)).clamp(-limit, limit)

    def _derived(self, name: str, source: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`compute(source)` without gradient, cached until `source` is modified or moved.

        In-place updates (optimizer steps, `load_state_dict`) bump a tensor's version counter
        and `.to()` moves its storage, so the key notices both.
        """
        # Inference tensors (a prior built inside `torch.inference_mode`) keep no version
        # counter; they cannot be updated in place outside inference mode either.
        key = (source.data_ptr(), None if source.is_inference() else source._version)
        cached = self._derived_cache.get(name)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = self._derived_cache[name] = (key, compute(source))
        return cached[1]

    def neighbour_logits(self, tokens: torch.Tensor, known: torch.Tensor, stage: int, rows: torch.Tensor) -> torch.Tensor:
        """Integer logits `[n, K]` at the True positions of `rows` `[B, h, w]` from the known
        tokens of stage `stage` at the 8 adjacent positions: floor(Σ gain · table row).

        Exact: every product is an int8 entry times an integer gain, and the sum of 8 of
        them stays far below 2**24, in whatever order it is added.
        """
        return self.neighbour_logits_at(tokens, known, stage, nonzero_positions(rows))

    def neighbour_logits_at(
        self, tokens: torch.Tensor, known: torch.Tensor, stage: int, where: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """`neighbour_logits` at (sample, row, column) indices `where`, in their order."""
        k = self.config.codebook_size
        b, i, j = where
        # No token of the stage known (a stage coded in one group knows none of its own): every
        # slot reads a zero row, so the sum is zero, and coding skips refilling and reading the
        # rows. Training takes the long way, which keeps the gains in the graph.
        if stage >= tokens.shape[1] or not (torch.is_grad_enabled() or known[:, stage].any()):
            return torch.zeros((b.numel(), k), device=tokens.device)
        padded_tokens = F.pad(tokens[:, stage], (1, 1, 1, 1))
        padded_known = F.pad(known[:, stage], (1, 1, 1, 1))  # outside the grid: unknown
        slots = []
        for d, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
            for side, sign in enumerate((1, -1)):
                y, x = i + 1 + sign * dy, j + 1 + sign * dx
                token = torch.where(padded_known[b, y, x], padded_tokens[b, y, x], k)  # row K is zero
                slots.append((2 * d + side) * (k + 1) + token)
        gains = self.integer_gains()[stage]
        weights = gains.repeat_interleave(2).expand(b.numel(), -1).contiguous()  # [n, 8]
        rows_read = torch.stack(slots, dim=1)  # [n, 8]
        if torch.is_grad_enabled():  # training: backward reads the rows, so each stage keeps its own
            table = self._derived(f"neighbour_rows{stage}", self.neighbour, lambda t: self._neighbour_rows(t, stage))
            summed = F.embedding_bag(rows_read, table, per_sample_weights=weights, mode="sum")
        else:
            with _CODING_ROWS_LOCK:
                summed = F.embedding_bag(rows_read, self._coding_rows_of(stage), per_sample_weights=weights, mode="sum")
        return floor_scaled(summed, 2.0**-GAIN_BITS)

    def integer_gains(self) -> torch.Tensor:
        """`[S, D]` the neighbour-table gains as the coding path reads them, integers at
        scale 2**-GAIN_BITS in [0, GAIN_MAX] (straight-through)."""
        return round_ste(self.neighbour_gain * (1 << GAIN_BITS)).clamp(0, GAIN_MAX)

    def _neighbour_rows(self, neighbour: torch.Tensor, stage: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """`[2·D·(K+1), K]` float rows of stage `stage`'s pair tables, one block per
        neighbour slot (offset d, then -d as the transposed table), each ending in a zero row
        for an unknown neighbour: one `embedding_bag` then sums all 8 neighbours. Written into
        `out` `[D, 2, K+1, K]` (zero in every block's last row) where given, else a new tensor."""
        tables = neighbour[stage]  # [D, K, K] int8
        d, k = tables.shape[:2]
        if out is None:
            out = tables.new_zeros((d, 2, k + 1, k), dtype=torch.float32)
        out[:, 0, :k].copy_(tables)
        out[:, 1, :k].copy_(tables.transpose(1, 2))
        return out.view(-1, k)

    def _coding_rows_of(self, stage: int) -> torch.Tensor:
        """`_neighbour_rows` of stage `stage` for the coding path, in the one buffer it keeps
        (call with `_CODING_ROWS_LOCK` held).

        Float32 rows take 34 MB a stage at K=1024: kept for every stage, the shipped 8-stage
        prior held 0.27 GB of them while a large image was coded. Refilling the one buffer
        costs a fraction of building a fresh tensor (touching 34 MB of new pages is most of
        that), and the search and the coder each visit every stage of a tile once.
        """
        key = (stage, self.neighbour.data_ptr(), None if self.neighbour.is_inference() else self.neighbour._version)
        rows = self._coding_rows
        if rows is None or rows.device != self.neighbour.device:
            with torch.inference_mode(False):  # a later pass outside inference mode refills it in place
                _, d, k, _ = self.neighbour.shape
                rows = self._coding_rows = torch.zeros((d, 2, k + 1, k), device=self.neighbour.device)
            self._coding_rows_key = None
        if self._coding_rows_key != key:
            self._neighbour_rows(self.neighbour, stage, out=rows)
            self._coding_rows_key = key
        return rows.view(-1, rows.shape[-1])

    def _previous(
        self, tokens: torch.Tensor, known: torch.Tensor, stage: int, where: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """`[n]` tokens of stage-1 at (sample, row, column) indices `where`, K where unknown."""
        if stage == 0 or tokens.shape[1] < stage:
            return torch.full((where[0].numel(),), self.config.codebook_size, dtype=torch.int64, device=tokens.device)
        return torch.where(known[:, stage - 1], tokens[:, stage - 1], self.config.codebook_size)[where]

    def forward(self, tokens: torch.Tensor, known: torch.Tensor, stage: torch.Tensor, predict: torch.Tensor) -> torch.Tensor:
        """Training pass: negative log-likelihood in nats of every position to predict.

        Args:
            tokens, known, stage: as in `trunk`.
            predict: `[B, h, w]` bool, positions of each sample's `stage` to score.

        Returns:
            `[n]` float, one NLL per True entry of `predict`, grouped by stage.
        """
        losses = [
            F.cross_entropy(logits, tokens[:, s][rows], reduction="none")
            for s, rows, logits in self.scored_logits(tokens, known, stage, predict)
        ]
        return torch.cat(losses)

    def scored_logits(
        self, tokens: torch.Tensor, known: torch.Tensor, stage: torch.Tensor, predict: torch.Tensor
    ) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """Float logits (nats) of the positions to predict, one `(s, rows, logits)` per stage
        present in `stage`: `rows` `[B, h, w]` marks those of stage s, `logits` `[n, K]` their
        rows in row-major order. Arguments as in `forward`."""
        features = self.trunk(tokens, known, stage)  # [B, h, w, C]
        scored = []
        for s in torch.unique(stage).tolist():
            rows = predict & (stage == s).view(-1, 1, 1)
            where = nonzero_positions(rows)
            previous = self._previous(tokens, known, s, where)
            neighbours = self.neighbour_logits_at(tokens, known, s, where)
            scored.append((s, rows, self.logits(features[rows], previous, neighbours, s) * (2.0**-self.config.logit_bits)))
        return scored

    def groups(self, stages: int, h: int, w: int) -> list[tuple[int, np.ndarray]]:
        """Coding order: (stage, bool mask `[h, w]`) pairs, stage-major.

        The masks of one stage partition the grid; empty groups (grids smaller than a tile)
        are left out. `stages` must be ≤ `config.stages`.
        """
        if not 1 <= stages <= self.config.stages or h < 1 or w < 1:
            raise ValueError(f"need 1 ≤ stages ≤ {self.config.stages} and a non-empty grid, got {stages}×{h}×{w}")
        order = []
        for stage in range(stages):
            groups = group_map(self.config.schedule[stage], h, w)
            order += [(stage, groups == g) for g in range(int(groups.max()) + 1) if (groups == g).any()]
        return order

    @torch.no_grad()
    def integer_logits(self, tokens: torch.Tensor, known: torch.Tensor, stage: int, masks: torch.Tensor) -> torch.Tensor:
        """Batched coding-path logits: `[B, s, h, w]` tokens/known, masks `[B, h, w]` →
        integer-valued float32 `[n, K]` (units of 2**-logit_bits nats), rows in (sample,
        row-major position) order. Integer-exact."""
        if self.training:
            raise RuntimeError("call .eval() before computing coding-path logits")
        stages = torch.full((tokens.shape[0],), stage, dtype=torch.int64, device=tokens.device)
        return self._logits_at(tokens, known, stage, self._grid_features(tokens, known, stages), nonzero_positions(masks))

    def _logits_at(
        self,
        tokens: torch.Tensor,
        known: torch.Tensor,
        stage: int,
        grid: torch.Tensor,
        where: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """Integer logits `[n, K]` at indices `where`, given `_grid_features` of the same tokens."""
        features = self._features_at(grid, where)
        neighbours = self.neighbour_logits_at(tokens, known, stage, where)
        return self.logits(features, self._previous(tokens, known, stage, where), neighbours, stage)

    def frequencies_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Integer-valued logits `[n, K]` → frequencies `[n, K]`, each ≥ 1, rows sum < 2**31.

        The frequencies are whole numbers held in float64 (exact far beyond 2**31): the coder
        divides them in float64 anyway, and gathering them from a float64 copy of the table
        with int32 offsets skips two full-size conversions, a third of the coding path's
        per-symbol work on Kodak.
        """
        below_max = (logits.amax(dim=1, keepdim=True) - logits).clamp_(max=self.exp_table.numel() - 1)
        table = self._derived("exp_table", self.exp_table, torch.Tensor.double)
        # index_select on the flat indices, not `table[below_max]`: advanced indexing took
        # three times as long for the same gather.
        return table.index_select(0, below_max.int().view(-1)).view(below_max.shape)

    def frequencies(self, tokens: np.ndarray, known: np.ndarray, stage: int, mask: np.ndarray) -> np.ndarray:
        """Integer frequencies of stage `stage` at the True positions of `mask`.

        Args:
            tokens: int64 `[s, h, w]`, s ≤ S; values where `known` is False are ignored.
            known: bool `[s, h, w]`.
            stage: the stage to predict, in [0, s).
            mask: bool `[h, w]`, positions to predict.

        Returns:
            float64 `[n, K]` holding whole numbers, n = mask.sum(), rows in row-major order
            of `mask`, entries ≥ 1, row sums < 2**31. Depends only on the known tokens,
            bit-identical anywhere.
        """
        mask = np.asarray(mask)
        if mask.shape != np.shape(tokens)[1:]:
            raise ValueError(f"need tokens/known [s,h,w] and mask [h,w], got {np.shape(tokens)}, {np.shape(known)}, {mask.shape}")
        return self.group_coder(tokens, known, stage)(np.flatnonzero(mask))

    @torch.no_grad()
    def group_coder(self, tokens: np.ndarray, known: np.ndarray, stage: int) -> Callable[[np.ndarray], np.ndarray]:
        """What the entropy coder asks of a prior for one coding group: a function from flat
        (row-major) positions of stage `stage` to their frequencies (as `frequencies`).

        The whole-grid part of the trunk depends only on the known tokens, so it runs once
        here; a group coded in chunks of positions then costs one trunk pass, not one per chunk.
        """
        if self.training:
            raise RuntimeError("call .eval() before computing coding-path frequencies")
        valid_tokens, valid_known = self._validated(tokens, known, stage)
        device = self.exp_table.device
        batch_tokens, batch_known = valid_tokens[None].to(device), valid_known[None].to(device)  # [1, S, h, w]
        stages = torch.full((1,), stage, dtype=torch.int64, device=device)
        grid = self._grid_features(batch_tokens, batch_known, stages)
        width = batch_tokens.shape[-1]

        @torch.no_grad()
        def frequencies_at(flat: np.ndarray) -> np.ndarray:
            positions = torch.from_numpy(np.asarray(flat, dtype=np.int64)).to(device)
            where = (torch.zeros_like(positions), positions // width, positions % width)
            logits = self._logits_at(batch_tokens, batch_known, stage, grid, where)
            return self.frequencies_from_logits(logits).cpu().numpy()

        return frequencies_at

    def _validated(self, tokens, known, stage) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, known = np.asarray(tokens), np.asarray(known)
        if tokens.ndim != 3 or known.shape != tokens.shape:
            raise ValueError(f"need tokens/known [s,h,w], got {tokens.shape}, {known.shape}")
        if not 0 <= stage < tokens.shape[0] <= self.config.stages:
            raise ValueError(
                f"need stage < given stages ({tokens.shape[0]}) ≤ the prior's {self.config.stages}, got stage {stage}"
            )
        known = torch.from_numpy(known.astype(bool))
        tokens = torch.from_numpy(tokens.astype(np.int64))
        if known.any() and not 0 <= int(tokens[known].min()) <= int(tokens[known].max()) < self.config.codebook_size:
            raise ValueError(f"known tokens must lie in [0, {self.config.codebook_size})")
        tokens = tokens.clamp(0, self.config.codebook_size - 1)  # unknown values are ignored but must index
        # Stages a stream does not hold are simply unknown: padding them makes the frequencies
        # of a stage independent of how many stages the file codes, so prefixes decode.
        missing = self.config.stages - tokens.shape[0]
        tokens = torch.cat([tokens, tokens.new_zeros((missing, *tokens.shape[1:]))])
        known = torch.cat([known, known.new_zeros((missing, *known.shape[1:]))])
        return tokens, known
