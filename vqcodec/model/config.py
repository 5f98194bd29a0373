"""The one dataclass that fixes a codec's architecture.

It is stored next to the weights (in the safetensors metadata and in training
checkpoints), so a model is always rebuilt from its config, never guessed from tensor shapes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class CodecConfig:
    """Architecture of a VQ codec.

    Attributes:
        stride: total downsampling factor f of the encoder (one index per f×f pixels).
            The stem pixel-unshuffles by 4 and one more ×2 stage gives f=8.
        width_fine: channels at 1/4 resolution.
        width_coarse: channels at 1/f resolution.
        encoder_blocks: residual blocks at (1/4, 1/f) resolution in the encoder.
        decoder_blocks: residual blocks at (1/f, 1/4) resolution in the decoder.
        latent_dim: dimension D of the vectors that are quantized.
        codebook_size: K, codewords per residual stage.
        stages: S, residual quantizer stages (each adds log2(K) bits per index position).
    """

    stride: int = 8
    width_fine: int = 64
    width_coarse: int = 128
    encoder_blocks: tuple[int, int] = (1, 2)
    decoder_blocks: tuple[int, int] = (3, 2)
    latent_dim: int = 32
    codebook_size: int = 1024
    stages: int = 4

    def __post_init__(self) -> None:
        if self.stride not in (4, 8, 16):
            raise ValueError(f"stride must be 4, 8 or 16, got {self.stride}")
        if not 2 <= self.codebook_size <= 65536:
            raise ValueError(f"codebook_size must be in [2, 65536], got {self.codebook_size}")
        if not 1 <= self.stages <= 16:
            raise ValueError(f"stages must be in [1, 16], got {self.stages}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CodecConfig:
        fields = json.loads(text)
        for key in ("encoder_blocks", "decoder_blocks"):
            fields[key] = tuple(fields[key])
        return cls(**fields)
