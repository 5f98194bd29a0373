"""`Codec`: the compression API bound to one model and its settings, over batches of image
tensors, in the shape of CompressAI's `compress(x) -> strings` / `decompress(strings) -> x_hat`.

Each image of a batch is its own complete `.vqc` stream (its own header, size and model hash),
so the streams of a batch can be stored, sent and decoded apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vqcodec.api import compress, decompress, model_info
from vqcodec.devices import resolve_device


class Codec:
    """Compress and decompress batches with fixed settings.

        codec = vqcodec.Codec(stages=2, device="auto")
        streams = codec.compress(x)          # x: [B,3,H,W] float in [0,1] → B streams
        x_hat = codec.decompress(streams)    # [B,3,H,W] float32 in [0,1], on codec.device

    Args:
        model: zoo name or path of a `.safetensors` codec weights file (default: the
            shipped model), loaded and checked here, once.
        stages: residual stages to code (1..S, default all).
        prior, prior_file, rdo, refine: as in `vqcodec.compress`.
        decoder: "fidelity" or "realism", for `decompress`.
        device: where the networks run: "cpu" (default), "cuda", "cuda:N" or "auto".
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        stages: int | None = None,
        prior: str | None = None,
        prior_file: str | Path | None = None,
        rdo: float | None = None,
        refine: int = 0,
        decoder: str = "fidelity",
        device: str | torch.device | None = "cpu",
    ) -> None:
        self.device = resolve_device(device)
        self.info = model_info(model)  # fails here, not on the first batch, for a wrong model
        self._model, self._prior_file, self._decoder = model, prior_file, decoder
        self._stages, self._prior, self._rdo, self._refine = stages, prior, rdo, refine

    def compress(self, x: torch.Tensor) -> list[bytes]:
        """Images `[B,3,H,W]` float in [0,1] (any device) → B streams, in batch order."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a tensor [B,3,H,W] float in [0,1], got {getattr(x, 'shape', type(x).__name__)}")
        return [
            compress(
                image,
                stages=self._stages,
                prior=self._prior,
                rdo=self._rdo,
                refine=self._refine,
                model=self._model,
                prior_file=self._prior_file,
                device=self.device,
            )
            for image in x
        ]

    def decompress(self, streams: Sequence[bytes]) -> torch.Tensor:
        """B streams of RGB images of one size → `[B,3,H,W]` float32 in [0,1] (the 8-bit values
        / 255) on `self.device`."""
        images = [
            decompress(
                data, decoder=self._decoder, output="torch", model=self._model, prior_file=self._prior_file, device=self.device
            )
            for data in streams
        ]
        if not images:
            raise ValueError("no streams to decode")
        if any(image.shape != images[0].shape or image.shape[0] != 3 for image in images):
            raise ValueError(f"a batch needs RGB images of one size, got {sorted({tuple(i.shape) for i in images})} [C,H,W]")
        return torch.stack(images).to(self.device)
