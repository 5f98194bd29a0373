"""LPIPS perceptual distance (Zhang et al., 2018; VGG16 variant), evaluated from a local file.

This package downloads nothing, so the realism decoder's perceptual term defaults to feature
matching on the discriminator. Given pretrained LPIPS weights, `lpips_weights=FILE` adds this
distance as well. The file is one state dict (`.pt` or `.safetensors`) with torchvision's
VGG16 convolutions under `features.N.{weight,bias}` and the `lpips` package's linear heads
under `linL.model.1.weight` (L = 0..4), merged, for example:

    vgg = torchvision.models.vgg16(weights="IMAGENET1K_V1").features.state_dict()
    heads = torch.load("lpips/weights/v0.1/vgg.pth")   # from the lpips package
    torch.save({**{f"features.{k}": v for k, v in vgg.items()}, **heads}, "lpips_vgg.pt")
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

# VGG16's convolutional part (channels, "M" = 2×2 max-pool), indexed as torchvision's
# `features` so its state dict loads as is; LPIPS reads the ReLU after the last
# convolution of each of the five blocks.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
TAP_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's input normalisation, for images in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class _Head(nn.Module):
    """One LPIPS linear head, laid out as the `lpips` package's (dropout slot, 1×1 conv)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """`forward(a, b)`: the mean LPIPS distance of two `[B,3,H,W]` batches in [0, 1]."""

    shift: torch.Tensor  # [1, 3, 1, 1], the input normalisation LPIPS was trained with
    scale: torch.Tensor  # [1, 3, 1, 1]

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        self.taps: list[int] = []
        for spec in VGG16_LAYERS:
            if isinstance(spec, str):  # "M"
                self.taps.append(len(layers) - 1)
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU()]
                channels = spec
        self.taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        for index, width in enumerate(TAP_CHANNELS):
            self.add_module(f"lin{index}", _Head(width))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def _activations(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images * 2 - 1) - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                # unit length along channels, as LPIPS compares feature directions
                taps.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return taps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        distance = a.new_zeros(())
        for index, (fa, fb) in enumerate(zip(self._activations(a), self._activations(b))):
            head = getattr(self, f"lin{index}").model
            distance = distance + head((fa - fb).pow(2)).mean()
        return distance


def load_lpips(path: str | Path) -> LPIPS:
    """A frozen LPIPS network (eval mode, no parameter gradients) from a local weights file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weights not found: {path} (this package does not download them)")
    try:
        state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a file that is no state dict at all: say which file
        raise ValueError(f"{path} is not an LPIPS weights file: {error}") from error
    network = LPIPS()
    expected = set(network.state_dict())
    if not isinstance(state, dict) or set(state) != expected:
        found = set(state) if isinstance(state, dict) else set()
        raise ValueError(
            f"{path} is not an LPIPS-VGG weights file: missing {sorted(expected - found)[:3]}, "
            f"unexpected {sorted(found - expected)[:3]}"
        )
    network.load_state_dict(state, strict=True)
    network.requires_grad_(False)
    return network.eval()
