"""The codec model: encoder → residual quantizer → decoder(s), plus the static entropy prior.

Training path (`forward`) and coding path (`encode_indices` / `decode_indices`) live on the
same module, as in CompressAI; losses and the discriminator stay in `vqcodec.train`.
"""

from __future__ import annotations

import torch
from torch import nn

from vqcodec.entropy.static_prior import StaticPrior

from .config import CodecConfig
from .decoder import Decoder
from .encoder import Encoder
from .quantizer import ResidualQuantizer

DECODER_NAMES = ("fidelity", "realism")


class VQCodec(nn.Module):
    """VQ-VAE image codec with one or two decoders sharing one encoder and codebooks."""

    def __init__(self, config: CodecConfig, decoders: tuple[str, ...] = ("fidelity",)) -> None:
        super().__init__()
        unknown = set(decoders) - set(DECODER_NAMES)
        if unknown or "fidelity" not in decoders:
            raise ValueError(f"decoders must include 'fidelity' and come from {DECODER_NAMES}, got {decoders}")
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = ResidualQuantizer(config.stages, config.codebook_size, config.latent_dim)
        self.decoders = nn.ModuleDict({name: Decoder(config) for name in decoders})
        self.prior = StaticPrior(config.stages, config.codebook_size)

    def forward(self, image: torch.Tensor, stages_per_sample: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training pass through the fidelity decoder.

        Args:
            image: `[B,3,H,W]` float in [0,1], H and W multiples of `config.stride`.
            stages_per_sample: `[B]` stages each sample keeps (quantizer dropout) or None.

        Returns:
            dict with `reconstruction` `[B,3,H,W]`, `latent`, `quantized`,
            `indices` `[B,S,h,w]` and scalar `commit_loss`.
        """
        latent = self.encoder(image)
        # Nearest-codeword search and EMA updates stay in fp32 even under bf16 autocast: bf16
        # distances would pick different codewords than inference does.
        with torch.autocast(device_type=latent.device.type, enabled=False):
            quantized, indices, commit_loss = self.quantizer(latent.float(), stages_per_sample)
        return {
            "reconstruction": self.decoders["fidelity"](quantized),
            "latent": latent,
            "quantized": quantized,
            "indices": indices,
            "commit_loss": commit_loss,
        }

    @torch.no_grad()
    def encode_indices(self, image: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """`[B,3,H,W]` in [0,1] (padded to the stride) → indices `[B,stages,H/f,W/f]` int64."""
        return self.quantizer.encode(self.encoder(image), stages or self.config.stages)

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor, decoder: str = "fidelity") -> torch.Tensor:
        """Indices `[B,s,h,w]` → image `[B,3,h*f,w*f]` float clamped to [0,1]."""
        if decoder not in self.decoders:
            raise ValueError(f"this model has no {decoder!r} decoder (it has {sorted(self.decoders)})")
        return self.decoders[decoder](self.quantizer.decode(indices)).clamp(0.0, 1.0)
