"""Generation and inpainting with the context prior: MaskGIT-style iterative unmasking of
token grids, stage by stage, and image-level wrappers that encode/decode with a codec.

Every stage is filled the way it is coded: earlier stages known everywhere, later stages
unknown, so sampling sees the same kind of context the prior was trained on. Sampling
works on the prior's integer logits with seeded Gumbel noise, so a seed gives the same
tokens on every run.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from vqcodec import coding
from vqcodec.entropy.context import ContextPrior
from vqcodec.imaging import image_from_uint8, prepare_image
from vqcodec.model import VQCodec

MAX_TOKENS = 1 << 20  # largest grid (h·w) sampled in one call; bounds memory and time
DEFAULT_STEPS = 8


def _check_sampling(steps: int, temperature: float, seed: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if not isinstance(seed, int) or not 0 <= seed < 1 << 63:  # torch generators take 64-bit seeds
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")


def _gumbel(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return -torch.log(-torch.log(uniform))


def _fill_stage(
    prior: ContextPrior,
    tokens: torch.Tensor,
    known: torch.Tensor,
    stage: int,
    steps: int,
    temperature: float,
    generator: torch.Generator,
) -> None:
    """Sample `tokens[stage]` where `known[stage]` is False, in place, over `steps` rounds.

    Each round predicts every open position, samples a token per position (Gumbel-max on
    logits/temperature), and fixes the most confident ones; the share left open follows
    MaskGIT's cosine schedule and reaches zero at the last round.
    """
    total = int((~known[stage]).sum())
    scale = 2.0**-prior.config.logit_bits
    device = prior.exp_table.device
    for step in range(steps):
        open_now = ~known[stage]  # [h, w]
        count = int(open_now.sum())
        if count == 0:
            return
        logits = prior.integer_logits(tokens[None].to(device), known[None].to(device), stage, open_now[None].to(device))
        scaled = logits.cpu().double() * (scale / temperature)  # [n, K] nats / temperature
        choice = (scaled + _gumbel(tuple(scaled.shape), generator)).argmax(dim=1)
        log_p = torch.log_softmax(scaled, dim=1).gather(1, choice[:, None])[:, 0]
        # Annealed noise on the confidence lets less likely tokens be fixed early on.
        confidence = log_p + temperature * (1 - (step + 1) / steps) * _gumbel((count,), generator)
        left_open = math.floor(total * math.cos(0.5 * math.pi * (step + 1) / steps)) if step + 1 < steps else 0
        fix = torch.argsort(confidence, descending=True, stable=True)[: max(1, count - left_open)]
        rows, cols = open_now.nonzero(as_tuple=True)  # row-major, like the logits' rows
        tokens[stage, rows[fix], cols[fix]] = choice[fix]
        known[stage, rows[fix], cols[fix]] = True


@torch.no_grad()
def _resample(
    prior: ContextPrior, tokens: torch.Tensor, mask: torch.Tensor, seed: int, steps: int, temperature: float
) -> torch.Tensor:
    """Re-sample `tokens` `[S,h,w]` where `mask` `[S,h,w]` is True, stage by stage."""
    _check_sampling(steps, temperature, seed)
    if prior.training:
        raise ValueError("call prior.eval() before sampling")
    generator = torch.Generator().manual_seed(seed)
    tokens = tokens.clone()
    for stage in range(tokens.shape[0]):
        if not mask[stage].any():
            continue
        known = torch.zeros(tokens.shape, dtype=torch.bool)
        known[:stage] = True
        known[stage] = ~mask[stage]
        _fill_stage(prior, tokens, known, stage, steps, temperature, generator)
    return tokens


def sample_tokens(
    prior: ContextPrior, stages: int, h: int, w: int, *, seed: int, steps: int = DEFAULT_STEPS, temperature: float = 1.0
) -> torch.Tensor:
    """Sample a token grid from the prior.

    Args:
        prior: a context prior in eval mode.
        stages: residual stages to sample, in [1, prior.config.stages].
        h, w: grid size in tokens, h·w ≤ MAX_TOKENS.
        seed: non-negative int; the same seed gives the same grid.
        steps: unmasking rounds per stage (≥ 1).
        temperature: > 0; lower gives more likely (smoother) grids.

    Returns:
        LongTensor `[stages, h, w]` in [0, K).
    """
    if not (isinstance(stages, int) and 1 <= stages <= prior.config.stages):
        raise ValueError(f"stages must be in [1, {prior.config.stages}], got {stages!r}")
    if not (isinstance(h, int) and isinstance(w, int) and h >= 1 and w >= 1 and h * w <= MAX_TOKENS):
        raise ValueError(f"grid must be at least 1×1 and at most {MAX_TOKENS} tokens, got {h}×{w}")
    tokens = torch.zeros((stages, h, w), dtype=torch.int64)
    return _resample(prior, tokens, torch.ones((stages, h, w), dtype=torch.bool), seed, steps, temperature)


def inpaint_tokens(
    prior: ContextPrior,
    tokens: torch.Tensor,
    token_mask: torch.Tensor,
    *,
    seed: int,
    steps: int = DEFAULT_STEPS,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Re-sample the tokens under a mask, conditioned on all the others.

    Args:
        prior: a context prior in eval mode.
        tokens: int `[S, h, w]` in [0, K), S ≤ prior.config.stages.
        token_mask: bool `[h, w]` (every stage) or `[S, h, w]`; True = re-sample.
        seed, steps, temperature: as in `sample_tokens`.

    Returns:
        LongTensor `[S, h, w]`, equal to `tokens` wherever the mask is False.
    """
    tokens = torch.as_tensor(tokens).cpu()
    mask = torch.as_tensor(token_mask).cpu()
    if tokens.dim() != 3 or not 1 <= tokens.shape[0] <= prior.config.stages or tokens.is_floating_point():
        raise ValueError(f"tokens must be an integer [S,h,w] grid with S ≤ {prior.config.stages}, got {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= prior.config.codebook_size):
        raise ValueError(f"tokens must lie in [0, {prior.config.codebook_size})")
    if mask.dtype != torch.bool or mask.shape not in (tokens.shape[1:], tokens.shape):
        raise ValueError(
            f"token_mask must be bool [h,w] or [S,h,w] matching {tuple(tokens.shape)}, got {mask.dtype} {tuple(mask.shape)}"
        )
    return _resample(prior, tokens.long(), mask.expand(tokens.shape), seed, steps, temperature)


def _device_of(codec: VQCodec) -> torch.device:
    """Where `codec` lives: sampling runs its networks there."""
    return next(codec.parameters()).device


def _check_models(codec: VQCodec, prior: ContextPrior, stages: int | None) -> int:
    """Stages to use; raises ValueError when codec and prior do not belong together."""
    if codec.config.codebook_size != prior.config.codebook_size:
        raise ValueError(f"prior is for K={prior.config.codebook_size} but the codec has K={codec.config.codebook_size}")
    most = min(codec.config.stages, prior.config.stages)
    stages = most if stages is None else stages
    if not (isinstance(stages, int) and 1 <= stages <= most):
        raise ValueError(f"stages must be in [1, {most}], got {stages!r}")
    return stages


def _load_mask(mask_image) -> np.ndarray:
    """PIL image or path → `[H, W]` bool, True where the mask is white (> 127 in grayscale).
    Read like the image it masks (`prepare_image`: EXIF rotation, 16-bit), so the two align."""
    return np.asarray(prepare_image(mask_image).to_pil().convert("L")) > 127


def generate_image(
    codec: VQCodec,
    prior: ContextPrior,
    width: int,
    height: int,
    *,
    seed: int,
    steps: int = DEFAULT_STEPS,
    temperature: float = 1.0,
    decoder: str = "fidelity",
    stages: int | None = None,
) -> Image.Image:
    """Sample a `width`×`height` RGB image: tokens from the prior, pixels from the codec's decoder.

    `stages` defaults to every stage both models have; the rest as in `sample_tokens`.
    """
    stages = _check_models(codec, prior, stages)
    if not (isinstance(width, int) and isinstance(height, int) and width >= 1 and height >= 1):
        raise ValueError(f"width and height must be positive integers, got {width!r}×{height!r}")
    f = codec.config.stride
    tokens = sample_tokens(prior, stages, -(-height // f), -(-width // f), seed=seed, steps=steps, temperature=temperature)
    return image_from_uint8(coding.reconstruct(codec, tokens, height, width, decoder, _device_of(codec)), "RGB", None)


def inpaint_image(
    codec: VQCodec,
    prior: ContextPrior,
    image,
    mask_image,
    *,
    seed: int,
    steps: int = DEFAULT_STEPS,
    temperature: float = 1.0,
    decoder: str = "fidelity",
    stages: int | None = None,
) -> Image.Image:
    """Re-sample the part of `image` under the white pixels of `mask_image`.

    Args:
        image: anything `vqcodec.imaging.prepare_image` accepts (PIL image, path, array).
        mask_image: PIL image or path of the same size; white (> 127 in grayscale) = re-sample.
        seed, steps, temperature, decoder, stages: as in `generate_image`.

    Returns:
        PIL image of the input's size and mode. Every 8×8 (stride×stride) cell touched by the
        mask is re-sampled; pixels outside those cells equal the codec's reconstruction from
        its nearest codewords (what `compress(..., rdo=0)` decodes to).
    """
    stages = _check_models(codec, prior, stages)
    prepared = prepare_image(image)
    height, width = prepared.rgb.shape[:2]
    mask = _load_mask(mask_image)
    if mask.shape != (height, width):
        raise ValueError(f"mask is {mask.shape[1]}×{mask.shape[0]} but the image is {width}×{height}")
    if not mask.any():
        raise ValueError("mask selects no pixels: paint the region to re-sample white")
    f, device = codec.config.stride, _device_of(codec)
    indices = torch.from_numpy(coding.quantize(codec, prepared.rgb, stages, device=device))  # [S, h, w]
    padded = np.pad(mask, ((0, -height % f), (0, -width % f)))
    token_mask = torch.from_numpy(padded.reshape(padded.shape[0] // f, f, -1, f).any(axis=(1, 3)))  # [h, w]
    edited = inpaint_tokens(prior, indices, token_mask, seed=seed, steps=steps, temperature=temperature)
    footprint = token_mask.repeat_interleave(f, 0).repeat_interleave(f, 1)[:height, :width, None].numpy()  # [H, W, 1]
    rgb = np.where(
        footprint,
        coding.reconstruct(codec, edited, height, width, decoder, device),
        coding.reconstruct(codec, indices, height, width, decoder, device),
    )
    return image_from_uint8(rgb, prepared.mode, prepared.alpha)
