"""A grown run in which every weight that growth added moves `--scale` times as far per
step as the trained ones: does the added width start to pay when it learns faster?

    python experiments/grown-wide/added_lr.py --scale 10 out_dir=runs/ww/added-lr10 init_from=vqc-f8-s8 ...

The arguments after `--scale` are `vqcodec train`'s overrides (phase vqvae, with init_from).
"Added" is every element outside the leading corner that the source's tensor fills
(`warm_start._widened`) and every tensor of an added residual block. The codebooks are left
out: a new codebook size restarts all of them from k-means. The scaling wraps AdamW's step
(global optimizer hooks): after the step, an added element's update is multiplied by the
scale, which is what a per-element learning rate of scale × lr gives (AdamW's step does not
depend on the gradient's magnitude, so scaling the gradient instead would change nothing).
The scale is written to `OUT_DIR/added_lr.json`.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from vqcodec.model import VQCodec
from vqcodec.train.config import load_config
from vqcodec.train.loop import train_vqvae
from vqcodec.train.warm_start import grown, leading_corner, load_vqvae

NOT_SCALED = ("quantizer.", "prior.", "decoders.realism.")


def added_masks(source: VQCodec, target: VQCodec) -> list[torch.Tensor | None]:
    """Per parameter of `target`, grown from `source`, in `parameters()` order (the
    optimizer's), a boolean mask of the elements growth added, or None where nothing is
    scaled."""
    trained = source.state_dict()
    masks: list[torch.Tensor | None] = []
    for name, parameter in target.named_parameters():
        if name.startswith(NOT_SCALED):
            masks.append(None)
            continue
        mask = torch.ones(parameter.shape, dtype=torch.bool)
        if name in trained:
            mask[leading_corner(trained[name].shape)] = False
        masks.append(mask if mask.any() else None)
    return masks


class AddedStepScale:
    """Optimizer hooks that multiply the update of the masked elements by `scale`."""

    def __init__(self, masks: list[torch.Tensor | None], scale: float) -> None:
        self.masks, self.scale = masks, scale
        self.before: list[torch.Tensor | None] = []

    def _pairs(self, optimizer: torch.optim.Optimizer):
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        if len(parameters) != len(self.masks) or any(
            mask is not None and mask.shape != p.shape for p, mask in zip(parameters, self.masks)
        ):
            raise RuntimeError("the optimizer's parameters are not the grown model's")
        return zip(parameters, self.masks, strict=True)

    @torch.no_grad()
    def pre(self, optimizer, args, kwargs) -> None:
        self.before = [None if mask is None else p[mask].clone() for p, mask in self._pairs(optimizer)]

    @torch.no_grad()
    def post(self, optimizer, args, kwargs) -> None:
        for (p, mask), before in zip(self._pairs(optimizer), self.before, strict=True):
            if mask is not None:
                p[mask] = before + self.scale * (p[mask] - before)


def one_step(model: VQCodec, masks: list[torch.Tensor | None], scale: float, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The parameters of a copy of `model` after one scaled AdamW step on `image`'s MSE."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    scaling = AddedStepScale(masks, scale)
    hooks = register_optimizer_step_pre_hook(scaling.pre), register_optimizer_step_post_hook(scaling.post)
    (model.decoders["fidelity"](model.encoder(image)) - image).pow(2).mean().backward()
    optimizer.step()
    for hook in hooks:
        hook.remove()
    return {name: p.detach() for name, p in model.named_parameters()}


def check_scaling(start: VQCodec, masks: list[torch.Tensor | None], scale: float) -> None:
    """After one step from `start`, the trained weights must be exactly where an unscaled
    step puts them and the added ones `scale` times as far from where they started."""
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain, scaled = one_step(start, masks, 1.0, image), one_step(start, masks, scale, image)
    for (name, initial), mask in zip(start.named_parameters(), masks, strict=True):
        added = torch.zeros_like(initial, dtype=torch.bool) if mask is None else mask
        expected = torch.where(added, initial + scale * (plain[name] - initial), plain[name])
        if not torch.equal(scaled[name][~added], plain[name][~added]) or not torch.allclose(scaled[name], expected, atol=1e-7):
            raise RuntimeError(f"the scaled step moved {name} wrongly")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("overrides", nargs="+")
    args = parser.parse_args()
    config = load_config(None, args.overrides)
    if config.phase != "vqvae" or not config.init_from:
        raise SystemExit("added_lr.py runs a grown vqvae phase: give init_from=")
    source = load_vqvae(config.init_from)
    start = grown(source, config.model)
    masks = added_masks(source, start)
    check_scaling(start, masks, args.scale)
    added = sum(int(m.sum()) for m in masks if m is not None)
    print(f"{added:,} added weights move {args.scale} times as far per step (checked on one step)")
    scaling = AddedStepScale(masks, args.scale)
    register_optimizer_step_pre_hook(scaling.pre)
    register_optimizer_step_post_hook(scaling.post)
    Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.out_dir) / "added_lr.json").write_text(json.dumps({"scale": args.scale, "added_weights": added}))
    train_vqvae(config)


if __name__ == "__main__":
    main()
