"""Fixed-point building blocks of the context prior: integer-valued layers and the exp table.

Every tensor on the coding path holds integers (stored as float32 for fast matmuls). Weights
are int8 with a power-of-two scale per output channel, activations are int8 with
`2**-act_bits` scale, and layers rescale their integer accumulators with a floor
multiplication by a power of two. An exact integer sum does not depend on summation order
as long as every partial sum stays below 2**24 (float32), so results are bit-identical on any
machine, thread count, CPU or GPU. Integers up to 127 are exact even where matmul inputs are
rounded to TF32 or bf16 (reduced-precision settings), and accumulation stays in float32.
In training mode the same arithmetic runs with
straight-through gradients (quantization-aware training).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INT8_MAX = 127
BIAS_MAX = 1 << 22  # |bias| in accumulator units; keeps 9·64·127² + bias below 2**24
FLOAT32_EXACT = 1 << 24
EXP_ONE_BITS = 16  # exp table value of the most likely symbol: 2**16
FRAC_BITS_RANGE = (-8, 30)  # the scales 2**f a weight row may get: far inside float32's range


def max_fan_in() -> int:
    """Largest fan-in whose int8×int8 accumulator (plus bias) stays exact in float32."""
    return (FLOAT32_EXACT - BIAS_MAX) // (INT8_MAX * INT8_MAX)


def exp_table(logit_bits: int) -> torch.Tensor:
    """`[T]` int64: round(2**16 · exp(-i / 2**logit_bits)), ≥ 1, ending at the first 1.

    Index i is how far (in 2**-logit_bits nats) a logit lies below its row's maximum.
    The table is computed once and stored with the prior's weights, so coding never
    depends on the local libm.
    """
    values: list[int] = []
    while not values or values[-1] > 1:
        values.append(max(1, round((1 << EXP_ONE_BITS) * math.exp(-len(values) / (1 << logit_bits)))))
    return torch.tensor(values, dtype=torch.int64)


def _straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """`rounded` forward, identity gradient; exactly `rounded` when no gradient is needed."""
    if not x.requires_grad:
        return rounded
    return x + (rounded - x).detach()


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _straight_through(x, torch.round(x))


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    return _straight_through(x, torch.floor(x))


def floor_scaled(acc: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """floor(acc · scale), straight-through; `acc` must be a fresh temporary of the caller.

    Without a gradient to carry (the coding path) it is overwritten in place: at `[n, K]`
    every temporary not allocated is a pass over tens of megabytes saved.
    """
    if acc.requires_grad:
        return floor_ste(acc * scale)
    return acc.mul_(scale).floor_()


def frac_bits(weight: torch.Tensor) -> torch.Tensor:
    """`[out]` int: the f that puts max|w|·2**f in [63.5, 127) per output channel (frexp is
    exact), clamped to FRAC_BITS_RANGE."""
    peak = weight.detach().abs().flatten(1).amax(1).clamp_min(2.0**-30)
    _, exponent = torch.frexp(peak / INT8_MAX)  # peak/127 = m·2**e with m in [0.5, 1)
    return (-exponent).clamp(*FRAC_BITS_RANGE)


def quantize_table(table: torch.Tensor, act_bits: int) -> torch.Tensor:
    """Float table → int8-valued activations at scale 2**-act_bits (straight-through)."""
    return round_ste(table * (2.0**act_bits)).clamp(-INT8_MAX, INT8_MAX)


def exact_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Convolution of channels-last integers by shifted matmuls: `[B,H,W,Ci]` ⊛ `[Co,Ci,k,k]` → `[B,H,W,Co]`.

    Used on the coding path instead of `F.conv2d` because convolution backends (cuDNN,
    NNPACK, ACL) may pick Winograd or FFT algorithms whose rounding breaks exactness, and may
    pick them by batch size; a matmul of integer values with bounded partial sums cannot round.
    """
    b, h, w, ci = x.shape
    k = weight.shape[-1]
    pad = k // 2
    padded = F.pad(x, (0, 0, pad, pad, pad, pad))  # [B, H+2p, W+2p, Ci]
    taps = weight.permute(1, 2, 3, 0).reshape(ci, -1)  # [Ci, k·k·Co]
    per_tap = (padded.reshape(-1, ci) @ taps).view(b, h + 2 * pad, w + 2 * pad, k * k, -1)
    out = per_tap[:, :h, :w, 0].clone()
    for tap in range(1, k * k):
        dy, dx = divmod(tap, k)
        out += per_tap[:, dy : dy + h, dx : dx + w, tap]
    return out


class QuantConv(nn.Module):
    """Integer-valued k×k convolution with int8 weights and a power-of-two rescale.

    Input: integers at scale 2**-act_bits. Output: floor(acc · 2**-f) clamped to [low, 127],
    at the same scale (low = 0 is a ReLU, low = -127 a signed output).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, act_bits: int, low: int) -> None:
        super().__init__()
        if in_channels * kernel * kernel > max_fan_in():
            raise ValueError(f"fan-in {in_channels * kernel * kernel} exceeds {max_fan_in()}: float32 sums would round")
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel, kernel) / math.sqrt(in_channels * kernel * kernel)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act_bits, self.low = act_bits, low

    def integer_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weight int8-valued `[Co,Ci,k,k]`, bias in accumulator units `[Co]`, frac bits `[Co]`)."""
        bits = frac_bits(self.weight)
        scale = torch.ldexp(torch.ones_like(self.bias), bits)  # exact powers of two
        weight = round_ste(self.weight * scale.view(-1, 1, 1, 1)).clamp(-INT8_MAX, INT8_MAX)
        bias = round_ste(self.bias * scale * (2.0**self.act_bits)).clamp(-BIAS_MAX, BIAS_MAX)
        return weight, bias, bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last `[B,H,W,Ci]` integers → `[B,H,W,Co]` integers in [low, 127]."""
        weight, bias, bits = self.integer_weights()
        if self.training:  # fast cuDNN/oneDNN kernels; training need not be exact
            acc = F.conv2d(x.permute(0, 3, 1, 2), weight, padding=weight.shape[-1] // 2).permute(0, 2, 3, 1)
        else:
            acc = exact_conv(x, weight)
        return self._requantize(acc, bias, bits)

    def at_positions(self, x: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The output `[n, Co]` at positions `where` = (sample, row, column) index tensors
        only, bit-identical to `forward(x)[where]` in eval mode.

        The coding path needs a layer's output only where tokens are predicted; computing
        just those rows is exact because each is the same bounded integer sum.
        """
        weight, bias, bits = self.integer_weights()
        pad = weight.shape[-1] // 2
        padded = F.pad(x, (0, 0, pad, pad, pad, pad))
        _, rows, columns, channels = padded.shape
        b, i, j = where
        # Every tap of every position in one gather of flat rows (one `index_select` took a
        # fraction of the time of k·k advanced-indexing reads and a stack).
        offsets = torch.arange(2 * pad + 1, device=x.device)
        taps = (offsets[:, None] * columns + offsets).view(-1)  # row-major tap order, like the weights below
        corner = (b * rows + i) * columns + j  # top-left tap of each position in `padded`
        flat = (corner[:, None] + taps).view(-1)
        patches = padded.reshape(-1, channels).index_select(0, flat).view(b.numel(), -1)  # [n, k·k·Ci]
        acc = patches @ weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t()
        return self._requantize(acc, bias, bits)

    def _requantize(self, acc: torch.Tensor, bias: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        rescale = torch.ldexp(torch.ones_like(self.bias), -bits)
        return floor_scaled(acc + bias, rescale).clamp_(self.low, INT8_MAX)


class QuantHead(nn.Module):
    """Per-stage output layer: int8 features `[n,C]` → integer logits `[n,K]` at 2**-logit_bits nats."""

    def __init__(self, stages: int, width: int, codebook_size: int, act_bits: int, logit_bits: int, logit_max: int) -> None:
        super().__init__()
        # Small initial weights: the prior starts near the bias (the marginal) instead of noise.
        self.weight = nn.Parameter(0.1 * torch.randn(stages, codebook_size, width) / math.sqrt(width))
        self.bias = nn.Parameter(torch.zeros(stages, codebook_size))
        self.act_bits, self.logit_bits, self.logit_max = act_bits, logit_bits, logit_max

    def integer_weights(self, stage: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage `stage`'s (weight int8-valued `[K,C]`, bias in accumulator units `[K]`, frac bits `[K]`)."""
        bits = frac_bits(self.weight[stage])  # [K], one scale per codeword
        scale = torch.ldexp(torch.ones_like(self.bias[stage]), bits)
        weight = round_ste(self.weight[stage] * scale.unsqueeze(1)).clamp(-INT8_MAX, INT8_MAX)
        bias = round_ste(self.bias[stage] * scale * (2.0**self.act_bits)).clamp(-BIAS_MAX, BIAS_MAX)
        return weight, bias, bits

    def forward(self, features: torch.Tensor, stage: int) -> torch.Tensor:
        """features `[n,C]` integers in [0,127] → logits `[n,K]` integers in ±logit_max."""
        weight, bias, bits = self.integer_weights(stage)
        acc = torch.addmm(bias, features, weight.t())  # [n, K]; integer partial sums: exact in any order
        rescale = torch.ldexp(torch.ones_like(bias), self.logit_bits - self.act_bits - bits)
        return floor_scaled(acc, rescale).clamp_(-self.logit_max, self.logit_max)
