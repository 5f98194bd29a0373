"""Training configuration: a dataclass, loadable from a JSON file plus `key=value` overrides."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from vqcodec.entropy.context import PriorConfig
from vqcodec.model.config import CodecConfig

# A run fitted to a budget times steps [warmup/4, warmup/2) (after start-up and compilation)
# and sizes its schedule at warmup/2; fewer warm-up steps would time too few steps.
MIN_BUDGET_WARMUP = 20


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored inside every checkpoint."""

    data_dir: str = "data/train"
    out_dir: str = "runs/vqvae"
    phase: str = "vqvae"  # "vqvae" (encoder, codebooks, fidelity decoder) or "vqgan" (realism decoder)
    # A VQ-VAE checkpoint or weights file: for "vqgan" the codec whose encoder and codebooks are
    # frozen; for "vqvae" the weights a fresh run starts from, with stages added if model.stages is larger.
    init_from: str = ""
    model: CodecConfig = field(default_factory=CodecConfig)
    crop: int = 128
    batch_size: int = 16
    steps: int = 8000
    lr: float = 1e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm; an unclipped spike once collapsed the codebooks
    # The commitment term averages ||z − (c1+…+cs)||² over the stages, so its stage-1 part pulls
    # the latent towards only K points; at 0.25 it cost 0.3–0.5 dB at 3–4 stages (README).
    commit_weight: float = 0.05
    # Quantizer dropout: relative odds that a sample keeps 1, 2, …, S stages (empty = uniform).
    # Every stage count shares one decoder, so weighting the top ones trades low-rate quality for high-rate.
    stage_weights: list[float] = field(default_factory=list)
    ms_ssim_weight: float = 0.01
    ms_ssim_scales: int = 3
    disc_start: int = 500  # vqgan: step from which the GAN terms enter the decoder's loss
    disc_lr: float = 2e-4
    disc_width: int = 32  # vqgan: PatchGAN channels in its first layer (doubled per layer, ≤ 8×)
    disc_layers: int = 3  # vqgan: stride-2 layers; 3 gives 70×70-pixel patches
    gan_weight: float = 0.5  # multiplies the adaptive weight of the hinge generator loss
    feature_matching_weight: float = 1.0
    lpips_weights: str = ""  # vqgan: a local LPIPS-VGG weights file (`vqcodec/train/lpips.py`); "" = none
    lpips_weight: float = 1.0  # vqgan with lpips_weights: multiplies the LPIPS term of the decoder's loss
    rate_weight: float = 0.0  # vqvae: λ of a λ·bpp term, the bits `rate_prior` would spend (0 = rate-blind)
    rate_prior: str = ""  # vqvae with rate_weight > 0: the frozen context prior (safetensors) that prices indices
    validation_images: int = 24
    validation_crop: int = 256
    validate_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 25
    workers: int = 0
    # Hold the decoded training images on the device and cut the crops there (data.ResidentCrops)
    # instead of batching them in DataLoader workers: one uint8 copy of the set in device memory.
    resident_data: bool = False
    threads: int = 0  # 0 = torch's default
    time_budget: float = 0.0  # minutes this invocation may run, then it stops with a checkpoint (0 = no limit)
    # With a time budget: set `steps` from the speed measured during the warm-up, so that the
    # schedule ends inside the budget (cleared once done, so a resumed run keeps the count).
    fit_steps_to_budget: bool = False
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "log_every", "validate_every", "checkpoint_every")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {getattr(self, name)!r}")
        for name in ("crop", "validation_crop"):
            size = getattr(self, name)
            if not isinstance(size, int) or size < self.model.stride or size % self.model.stride:
                raise ValueError(f"{name} must be a multiple of the stride {self.model.stride}, got {size!r}")
        if not self.lr > 0 or not self.disc_lr > 0:
            raise ValueError(f"lr and disc_lr must be positive, got {self.lr!r}, {self.disc_lr!r}")
        weights = self.stage_weights
        if (
            not isinstance(weights, (list, tuple))
            or weights
            and (
                len(weights) != self.model.stages
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < math.inf for w in weights)
            )
        ):
            raise ValueError(
                f"stage_weights must be a list, empty or of {self.model.stages} finite weights ≥ 0 "
                f"(one per stage count), got {weights!r}"
            )
        if weights and not sum(weights) > 0:
            raise ValueError(f"stage_weights must not all be 0, got {weights!r}")
        if self.lpips_weights and self.phase != "vqgan":
            raise ValueError("lpips_weights trains the realism decoder: it needs phase=vqgan")
        if not self.lpips_weight >= 0:
            raise ValueError(f"lpips_weight must be ≥ 0, got {self.lpips_weight!r}")
        if not self.rate_weight >= 0:
            raise ValueError(f"rate_weight must be ≥ 0, got {self.rate_weight!r}")
        if self.rate_weight > 0 and (self.phase != "vqvae" or not self.rate_prior):
            raise ValueError("a rate term (rate_weight > 0) needs phase=vqvae and rate_prior, a context prior file")
        budget = self.time_budget
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 <= budget < math.inf:
            raise ValueError(f"time_budget must be a finite number of minutes ≥ 0, got {budget!r}")
        for name in ("fit_steps_to_budget", "resident_data"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.fit_steps_to_budget:
            if not budget > 0:
                raise ValueError("fit_steps_to_budget sizes the schedule to a time budget: set time_budget too")
            if self.warmup_steps < MIN_BUDGET_WARMUP or self.steps <= self.warmup_steps:
                raise ValueError(
                    f"fit_steps_to_budget needs warmup_steps ≥ {MIN_BUDGET_WARMUP} and a provisional "
                    "steps beyond them: the schedule is sized inside the warm-up, where the "
                    "learning rate does not depend on steps yet"
                )
        if not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0 or self.validation_images < 0:
            raise ValueError("need 0 ≤ min_lr_ratio ≤ 1, warmup_steps ≥ 0 and validation_images ≥ 0")

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        return json.dumps(fields, sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, fields: dict) -> TrainConfig:
        fields = dict(fields)
        model = fields.pop("model", {})
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        model_config = CodecConfig.from_json(json.dumps({**dataclasses.asdict(CodecConfig()), **model}))
        return cls(model=model_config, **fields)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_config(path: str | None, overrides: list[str], base: TrainConfig | None = None) -> TrainConfig:
    """`base` (optional, else the defaults), then the JSON file (optional), then `key=value`
    overrides; `model.key=value` sets model fields."""
    fields: dict = json.loads(base.to_json()) if base else {}
    if path:
        file_fields = json.loads(Path(path).read_text())
        fields["model"] = {**fields.get("model", {}), **file_fields.pop("model", {})}
        fields.update(file_fields)
    fields.setdefault("model", {})
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override must be key=value, got {item!r}")
        key, value = item.split("=", 1)
        if key.startswith("model."):
            fields["model"][key[len("model.") :]] = _parse_value(value)
        else:
            fields[key] = _parse_value(value)
    return TrainConfig.from_dict(fields)


@dataclass
class PriorTrainConfig:
    """One prior training run; stored in its checkpoints. Field names shared with
    `TrainConfig` (lr, steps, warmup_steps, min_lr_ratio) feed the same `learning_rate`."""

    prior: PriorConfig = field(default_factory=PriorConfig)
    steps: int = 2000
    batch_size: int = 16
    crop: int = 24  # token crop side (24 tokens = 192 pixels)
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    schedule_mask_share: float = 0.5  # share of samples masked like the coding schedule
    max_side: int = 768  # larger training images are downscaled before encoding
    search_lambda: float = 0.0  # relative λ of the rate–distortion search for the tokens (0: nearest)
    validation_images: int = 16
    log_every: int = 25
    checkpoint_every: int = 250
    seed: int = 0

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        fields["prior"] = json.loads(self.prior.to_json())
        return json.dumps(fields, sort_keys=True)
