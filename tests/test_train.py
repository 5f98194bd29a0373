"""Training: one step learns, both phases' steps run under the GPU's bf16 autocast, resume
replays exactly, DDP keeps ranks identical, the GAN phase trains only the realism decoder,
configs survive checkpoints, the CLI dispatches on phase, a run grown from trained weights
keeps them and refuses weights that do not fit."""

import dataclasses
import json
import lzma
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from click.testing import CliRunner
from PIL import Image

from vqcodec import zoo
from vqcodec.model import CodecConfig, VQCodec
from vqcodec.model.discriminator import PatchDiscriminator
from vqcodec.train import gan, loop
from vqcodec.train.checkpoint import (
    LATEST,
    WEIGHTS,
    config_from_checkpoint,
    leg_state,
    load_checkpoint,
    restore_run,
    save_run,
)
from vqcodec.train.commands import leg_state_command, train_command
from vqcodec.train.config import TrainConfig, load_config
from vqcodec.train.data import split_files
from vqcodec.train.export import export_model
from vqcodec.train.gan import GanParts, add_realism_decoder, freeze_all_but_realism, gan_step, train_vqgan
from vqcodec.train.logger import RunLogger, read_metrics
from vqcodec.train.loop import budget_steps, evaluating, pick_device, train_vqvae, validate, vqvae_step
from vqcodec.train.schedule import learning_rate
from vqcodec.train.warm_start import grown, load_vqvae
from vqcodec.zoo import load_codec_file

torch.set_num_threads(1)

TINY = CodecConfig(
    width_fine=16, width_coarse=32, encoder_blocks=(1, 1), decoder_blocks=(1, 1), latent_dim=8, codebook_size=16, stages=2
)


def write_images(folder: Path, count: int = 8) -> Path:
    """Smooth colour gradients plus noise, 48×40, so crops differ from each other."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:48]
    for i in range(count):
        base = np.stack([x * (i + 1) % 256, y * (7 - i % 7) * 3 % 256, (x + y) * 2 % 256], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def tiny_config(root: Path, out: str, **overrides) -> TrainConfig:
    fields = dict(
        data_dir=str(root / "images"),
        out_dir=str(root / out),
        model=TINY,
        crop=32,
        batch_size=4,
        steps=4,
        lr=2e-3,
        warmup_steps=0,
        min_lr_ratio=1.0,
        ms_ssim_scales=2,
        validation_images=2,
        validation_crop=32,
        validate_every=1000,
        checkpoint_every=2,
        log_every=1,
        threads=1,
        disc_start=1,
        disc_width=8,
        disc_layers=2,
    )
    return TrainConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def vqvae_run(tmp_path_factory) -> Path:
    """A tiny VQ-VAE trained for 4 steps; its folder holds latest.pt and weights.safetensors."""
    root = tmp_path_factory.mktemp("vqvae")
    write_images(root / "images")
    train_vqvae(tiny_config(root, "run"))
    return root


def gan_config(root: Path, vqvae_root: Path, out: str, **overrides) -> TrainConfig:
    return tiny_config(
        root, out, phase="vqgan", init_from=str(vqvae_root / "run" / LATEST), data_dir=str(vqvae_root / "images"), **overrides
    )


def train_rows(out_dir: Path) -> dict[int, dict]:
    rows = read_metrics(out_dir)
    return {
        row["step"]: {k: v for k, v in row.items() if k.startswith("train/") and k != "train/images_per_s"}
        for row in rows
        if "train/loss" in row
    }


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def fixed_batch() -> torch.Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_vqvae_steps_change_weights_and_lower_loss_on_fixed_batch():
    torch.manual_seed(0)
    model = VQCodec(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    config = TrainConfig(model=TINY, ms_ssim_scales=2)
    batch, keep = fixed_batch(), torch.full((4,), 2)
    first, _ = vqvae_step(model, optimizer, batch, keep, config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(5):
        terms, indices = vqvae_step(model, optimizer, batch, keep, config)
    assert indices.shape == (4, 2, 4, 4)
    assert not torch.equal(before["decoders.fidelity.from_latent.weight"], model.decoders["fidelity"].from_latent.weight)
    assert not torch.equal(before["encoder.stem.1.weight"], model.encoder.stem[1].weight)
    assert terms["total"] < first["total"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_vqvae_steps_on_a_gpu_learn_under_bf16_autocast(tmp_path):
    """The CUDA path (bf16 autocast, fp32 quantizer) trains, and a short run on the GPU
    writes weights that load and code on the CPU. (The compiled Triton kernel has its own
    GPU test in test_kernels.py: in a whole-suite run this process uses the interpreter.)"""
    torch.manual_seed(0)
    model = VQCodec(TINY).cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    config = TrainConfig(model=TINY, ms_ssim_scales=2)
    batch, keep = fixed_batch().cuda(), torch.full((4,), 2, device="cuda")
    first, _ = vqvae_step(model, optimizer, batch, keep, config)
    for _ in range(5):
        terms, indices = vqvae_step(model, optimizer, batch, keep, config)
    assert indices.is_cuda and terms["total"] < first["total"]
    assert all(torch.isfinite(value).all() for value in model.state_dict().values() if value.is_floating_point())
    write_images(tmp_path / "images")
    train_vqvae(tiny_config(tmp_path, "run", device="cuda"))
    codec = load_codec_file(tmp_path / "run" / WEIGHTS)
    assert codec.encode_indices(fixed_batch()).shape == (4, 2, 4, 4)


def test_training_steps_run_under_bf16_autocast_and_still_pick_codewords_in_fp32(monkeypatch):
    """The GPU job's mixed precision, emulated on the CPU (where `autocast` is otherwise off, so
    a dtype mistake in either phase would first show on the GPU): a VQ-VAE step and a GAN step
    run with finite losses, and the codewords are the ones an fp32 search of the same latent
    picks, as inference would pick them."""
    bf16 = lambda device: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    monkeypatch.setattr(loop, "autocast", bf16)
    monkeypatch.setattr(gan, "autocast", bf16)
    torch.manual_seed(0)
    model = VQCodec(TINY).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    config = TrainConfig(model=TINY, ms_ssim_scales=2)
    for _ in range(3):
        terms, _ = vqvae_step(model, optimizer, fixed_batch(), torch.full((4,), 2), config)
        assert all(torch.isfinite(value) for value in terms.values())
    with evaluating(model), torch.no_grad(), bf16(torch.device("cpu")):
        out = model(fixed_batch())
    assert out["latent"].dtype == torch.bfloat16  # autocast really was on
    with evaluating(model), torch.no_grad():
        _, fp32_indices, _ = model.quantizer(out["latent"].float(), None)
    assert torch.equal(out["indices"], fp32_indices)
    _, _, parts = tiny_gan()
    terms = gan_step(parts, fixed_batch(), torch.full((4,), 2), config, True)
    assert all(torch.isfinite(torch.as_tensor(value)) for value in terms.values())


def tiny_gan(lpips=None) -> tuple[VQCodec, PatchDiscriminator, GanParts]:
    """A tiny codec whose codebooks are initialised (as stage 1 would have), frozen but for
    its realism decoder, a discriminator, and the GAN step's parts over them."""
    torch.manual_seed(0)
    model = add_realism_decoder(VQCodec(TINY)).train()
    with torch.no_grad():
        model(fixed_batch())
    freeze_all_but_realism(model)
    disc = PatchDiscriminator(width=8, layers=2)
    optimizers = (torch.optim.Adam(model.decoders["realism"].parameters(), lr=1e-3), torch.optim.Adam(disc.parameters(), lr=1e-3))
    return model, disc, GanParts(model, model.decoders["realism"], disc, disc, *optimizers, lpips)


def test_gan_step_trains_only_realism_decoder_and_discriminator():
    model, disc, parts = tiny_gan()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    disc_before = {k: v.clone() for k, v in disc.state_dict().items()}
    terms = gan_step(parts, fixed_batch(), torch.full((4,), 2), TrainConfig(model=TINY, ms_ssim_scales=2), True)
    assert {"generator", "feature_matching", "adaptive_weight", "disc_loss"} <= set(terms)
    assert terms["adaptive_weight"] > 0
    after = model.state_dict()
    for key in before:
        if not key.startswith("decoders.realism."):  # encoder, codebooks + EMA stats, fidelity decoder
            assert torch.equal(before[key], after[key]), key
    for key in ("decoders.realism.from_latent.weight", "decoders.realism.to_pixels.1.weight"):
        assert not torch.equal(before[key], after[key]), key
    assert not torch.equal(disc_before["to_logits.bias"], disc.state_dict()["to_logits.bias"])
    assert model.quantizer.training is False and model.decoders["realism"].training is True


def test_gan_step_adds_lpips_to_the_decoder_loss_when_given(tmp_path):
    from test_lpips import random_lpips

    _, _, parts = tiny_gan(random_lpips().requires_grad_(False).eval())
    config = TrainConfig(model=TINY, ms_ssim_scales=2, phase="vqgan", lpips_weights="x", lpips_weight=2.0)
    terms = gan_step(parts, fixed_batch(), torch.full((4,), 2), config, False)
    assert terms["lpips"] > 0
    assert terms["total"].item() == pytest.approx(terms["loss"].item() + 2.0 * terms["lpips"].item(), rel=1e-5)


def test_lpips_options_are_checked_before_training(tmp_path, vqvae_run):
    with pytest.raises(ValueError, match="phase=vqgan"):
        tiny_config(tmp_path, "run", lpips_weights="lpips.pt")
    with pytest.raises(FileNotFoundError, match="LPIPS weights not found"):
        train_vqgan(gan_config(tmp_path, vqvae_run, "gan-lpips", lpips_weights=str(tmp_path / "absent.pt")))
    assert not (tmp_path / "gan-lpips").exists()
    from vqcodec.train.lpips import LPIPS

    weights = tmp_path / "lpips.pt"
    torch.save(LPIPS().state_dict(), weights)
    train_vqgan(gan_config(tmp_path, vqvae_run, "gan-lpips", lpips_weights=str(weights), steps=2))
    assert all("train/lpips" in row for row in train_rows(tmp_path / "gan-lpips").values())


def test_evaluating_restores_each_modules_mode():
    model = add_realism_decoder(VQCodec(TINY))
    freeze_all_but_realism(model)
    with evaluating(model):
        assert not model.decoders["realism"].training
    assert model.decoders["realism"].training and not model.quantizer.training and not model.encoder.training


def test_validate_reports_psnr_and_ms_ssim_per_stage():
    model = VQCodec(TINY)
    metrics = validate(model, torch.rand(3, 3, 32, 32), batch_size=2)
    for s in (1, 2):
        assert np.isfinite(metrics[f"val/psnr_stages{s}"])
        assert -1.0 <= metrics[f"val/ms_ssim_stages{s}"] <= 1.0
    assert 0 < metrics["val/usage_stage0"] <= 1


def test_learning_rate_warms_up_then_decays_to_floor():
    config = TrainConfig(lr=1e-3, warmup_steps=10, steps=110, min_lr_ratio=0.1)
    assert learning_rate(config, 0) == pytest.approx(1e-4)
    assert learning_rate(config, 9) == pytest.approx(1e-3)
    assert learning_rate(config, 110) == pytest.approx(1e-4)
    assert learning_rate(config, 60, peak=2e-4) == pytest.approx(2e-4 * (0.1 + 0.9 * 0.5))


def test_stage_dropout_draws_stage_counts_by_their_weights(tmp_path):
    uniform = loop.TrainingRun(tiny_config(tmp_path, "uniform"))
    counts = torch.bincount(uniform.stage_dropout(0, 4000), minlength=3)[1:].tolist()
    assert all(1800 < c < 2200 for c in counts)
    weighted = loop.TrainingRun(tiny_config(tmp_path, "weighted", stage_weights=[1.0, 3.0]))
    counts = torch.bincount(weighted.stage_dropout(0, 4000), minlength=3)[1:].tolist()
    assert 900 < counts[0] < 1100 and 2900 < counts[1] < 3100
    only_top = loop.TrainingRun(tiny_config(tmp_path, "top", stage_weights=[0, 1]))
    assert only_top.stage_dropout(0, 64).eq(2).all()
    # A resumed run is a new instance: it must draw what the first one drew at that step.
    resumed = loop.TrainingRun(tiny_config(tmp_path, "weighted", stage_weights=[1.0, 3.0]))
    assert torch.equal(weighted.stage_dropout(7, 64), resumed.stage_dropout(7, 64))
    assert load_config(None, ["stage_weights=[1,1,2,4]"]).stage_weights == [1, 1, 2, 4]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"log_every": 0}, "log_every"),
        ({"steps": 0}, "steps"),
        ({"crop": 30}, "crop"),
        ({"lr": 0.0}, "lr"),
        ({"min_lr_ratio": 2.0}, "min_lr_ratio"),
        ({"time_budget": -1.0}, "time_budget"),
        ({"time_budget": float("inf")}, "finite"),
        ({"time_budget": True}, "finite"),
        ({"fit_steps_to_budget": True, "time_budget": 5.0, "warmup_steps": 10, "steps": 100}, "warmup_steps ≥ 20"),
        ({"fit_steps_to_budget": True, "time_budget": 5.0, "warmup_steps": 20, "steps": 10}, "provisional steps"),
        ({"fit_steps_to_budget": True, "warmup_steps": 100, "steps": 1000}, "set time_budget too"),
        ({"stage_weights": [1.0]}, "2 finite weights"),
        ({"stage_weights": [1.0, -1.0]}, "2 finite weights"),
        ({"stage_weights": [0, 0]}, "not all be 0"),
        ({"stage_weights": [1.0, float("nan")]}, "2 finite weights"),
        ({"stage_weights": 4}, "must be a list"),
        ({"resident_data": "yes"}, "resident_data must be true or false"),
    ],
)
def test_config_rejects_values_a_run_cannot_use(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, "run", **override)


def test_too_few_images_for_a_training_split_is_a_clear_error(tmp_path):
    files = [tmp_path / f"{i}.png" for i in range(3)]
    with pytest.raises(ValueError, match="none for training"):
        split_files(files, 3)
    assert split_files(files, 2)[0] == [files[2]]


def test_files_that_are_not_checkpoints_or_weights_are_refused_clearly(tmp_path, vqvae_run):
    from safetensors.torch import save_file

    Image.new("RGB", (4, 4)).save(tmp_path / "image.pt", format="PNG")
    torch.save({"a": 1}, tmp_path / "other.pt")
    for path in (tmp_path / "image.pt", tmp_path / "other.pt"):
        with pytest.raises(ValueError, match="not a vqcodec training checkpoint"):
            load_checkpoint(path)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    for path in (tmp_path / "other.safetensors", tmp_path / "junk.safetensors"):
        with pytest.raises(ValueError, match="not vqcodec codec weights"):
            load_codec_file(path)
    result = CliRunner().invoke(
        train_command,
        ["phase=vqgan", f"init_from={tmp_path / 'image.pt'}", f"data_dir={vqvae_run / 'images'}", f"out_dir={tmp_path / 'gan'}"],
    )
    assert result.exit_code == 1 and "not a vqcodec training checkpoint" in result.output


def test_resume_applies_a_changed_weight_decay(tmp_path):
    model = VQCodec(TINY)
    save_run(tmp_path / "run", tiny_config(tmp_path, "run"), 2, model, torch.optim.AdamW(model.parameters(), weight_decay=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), weight_decay=0.0)
    assert restore_run(load_checkpoint(tmp_path / "run" / LATEST), model, optimizer, 0.1) == 2
    assert all(group["weight_decay"] == 0.1 for group in optimizer.param_groups)


def test_torchrun_refuses_one_gpu_index_for_every_process(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ValueError, match="one GPU"):
        pick_device("cuda:0")


def test_config_round_trips_through_checkpoint(tmp_path):
    config = tiny_config(tmp_path, "run", phase="vqgan", init_from="a/latest.pt", gan_weight=0.25, seed=7)
    model = VQCodec(TINY)
    save_run(tmp_path / "run", config, 3, model, torch.optim.Adam(model.parameters()))
    state = load_checkpoint(tmp_path / "run" / LATEST)
    assert config_from_checkpoint(state) == config
    assert {"model", "optimizer", "quantizer_rng", "step", "train_config"} <= set(state)


@pytest.mark.parametrize("resident_data", [False, True])
def test_vqvae_resume_continues_identically(tmp_path, vqvae_run, resident_data):
    data = dict(data_dir=str(vqvae_run / "images"), resident_data=resident_data)
    straight = tiny_config(tmp_path, "straight", **data)
    split = tiny_config(tmp_path, "split", **data)
    final = train_vqvae(straight)
    train_vqvae(tiny_config(tmp_path, "split", steps=2, **data))
    resumed = train_vqvae(split, load_checkpoint(tmp_path / "split" / LATEST))
    assert train_rows(tmp_path / "straight") == train_rows(tmp_path / "split")
    assert sorted(train_rows(tmp_path / "split")) == [1, 2, 3, 4]
    assert_same_state(final.state_dict(), resumed.state_dict())


class TickingClock:
    """Advances `tick` seconds per reading: a run's budget decisions then depend on its step
    count alone. The loop reads it once at start, once after every step but the last, and
    once more at the two steps that time the warm-up."""

    def __init__(self, tick: float = 1.0) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_budget_steps_fill_a_share_of_the_time_left():
    assert budget_steps(10, steps_per_s=2.0, seconds_left=100.0) == 10 + 180
    assert budget_steps(10, steps_per_s=2.0, seconds_left=-5.0) == 11  # late: one more step, then the stop


def test_time_budget_sizes_the_schedule_during_the_warm_up(tmp_path, vqvae_run, monkeypatch):
    images = str(vqvae_run / "images")
    monkeypatch.setattr(loop, "clock", TickingClock())
    train_vqvae(
        tiny_config(
            tmp_path,
            "budget",
            data_dir=images,
            steps=1000,
            warmup_steps=20,
            time_budget=1.0,
            fit_steps_to_budget=True,
            checkpoint_every=1000,
        )
    )
    # Timed over steps 5..10: 5 steps in 6 readings; at step 10, 11 of 60 s are spent, so
    # 10 + int(0.9 · 49 s · 5/6 steps/s) = 46 steps, which end before the budget does.
    state = load_checkpoint(tmp_path / "budget" / LATEST)
    stored = config_from_checkpoint(state)
    assert state["step"] == stored.steps == 46 and not stored.fit_steps_to_budget
    assert json.loads((tmp_path / "budget" / "config.json").read_text())["steps"] == 46
    # The very schedule (learning rates included) of a run told 46 steps from the start.
    train_vqvae(tiny_config(tmp_path, "told", data_dir=images, steps=46, warmup_steps=20, checkpoint_every=1000))
    assert train_rows(tmp_path / "budget") == train_rows(tmp_path / "told")


def test_a_run_resumed_before_its_schedule_was_sized_still_sizes_it(tmp_path, vqvae_run, monkeypatch):
    fitted = dict(data_dir=str(vqvae_run / "images"), steps=1000, warmup_steps=20, fit_steps_to_budget=True)
    monkeypatch.setattr(loop, "clock", TickingClock())
    train_vqvae(tiny_config(tmp_path, "run", time_budget=7.5 / 60, **fitted))
    stopped = load_checkpoint(tmp_path / "run" / LATEST)  # 8 s spent after step 7, timing begun at 5
    assert stopped["step"] == 7 and config_from_checkpoint(stopped).fit_steps_to_budget
    monkeypatch.setattr(loop, "clock", TickingClock())
    train_vqvae(tiny_config(tmp_path, "run", time_budget=1.0, **fitted), stopped)
    # Timing restarts at step 8 (reading 2) and sizes at 13 (reading 8): 5 steps in 6 s and
    # 53 s left, so 13 + int(0.9 · 53 · 5/6) = 52.
    state = load_checkpoint(tmp_path / "run" / LATEST)
    assert state["step"] == config_from_checkpoint(state).steps == 52


def test_time_budget_stops_with_a_checkpoint_that_resumes_identically(tmp_path, vqvae_run, monkeypatch):
    images = str(vqvae_run / "images")
    final = train_vqvae(tiny_config(tmp_path, "straight", data_dir=images, steps=6, warmup_steps=20))
    monkeypatch.setattr(loop, "clock", TickingClock())
    train_vqvae(tiny_config(tmp_path, "split", data_dir=images, steps=6, warmup_steps=20, time_budget=3.5 / 60))
    assert load_checkpoint(tmp_path / "split" / LATEST)["step"] == 4  # 4 s spent after step 4
    resumed = train_vqvae(
        tiny_config(tmp_path, "split", data_dir=images, steps=6, warmup_steps=20), load_checkpoint(tmp_path / "split" / LATEST)
    )
    assert train_rows(tmp_path / "straight") == train_rows(tmp_path / "split")
    assert_same_state(final.state_dict(), resumed.state_dict())


def test_vqgan_resume_continues_identically(tmp_path, vqvae_run):
    final = train_vqgan(gan_config(tmp_path, vqvae_run, "straight"))
    train_vqgan(gan_config(tmp_path, vqvae_run, "split", steps=2))
    resumed = train_vqgan(gan_config(tmp_path, vqvae_run, "split"), load_checkpoint(tmp_path / "split" / LATEST))
    assert train_rows(tmp_path / "straight") == train_rows(tmp_path / "split")
    assert "train/generator" in train_rows(tmp_path / "split")[4]
    assert_same_state(final.state_dict(), resumed.state_dict())
    state = load_checkpoint(tmp_path / "split" / LATEST)
    assert {"disc", "disc_optimizer"} <= set(state)


def test_vqgan_export_has_both_decoders_and_untouched_stage1(tmp_path, vqvae_run):
    train_vqgan(gan_config(tmp_path, vqvae_run, "gan"))
    stage1 = load_codec_file(vqvae_run / "run" / WEIGHTS)
    codec = load_codec_file(tmp_path / "gan" / WEIGHTS)
    assert sorted(codec.decoders) == ["fidelity", "realism"]
    exported = codec.state_dict()
    for key, value in stage1.state_dict().items():
        assert torch.equal(exported[key], value), key  # encoder, codebooks, fidelity decoder
    assert not torch.equal(exported["decoders.realism.to_pixels.1.weight"], exported["decoders.fidelity.to_pixels.1.weight"])
    assert not any("disc" in key for key in exported)
    indices = codec.encode_indices(torch.rand(1, 3, 32, 32))
    fidelity, realism = codec.decode_indices(indices, "fidelity"), codec.decode_indices(indices, "realism")
    assert fidelity.shape == realism.shape == (1, 3, 32, 32)
    assert not torch.equal(fidelity, realism)


def test_cli_dispatches_on_phase_and_reports_bad_setups(tmp_path, vqvae_run):
    runner = CliRunner()
    assert runner.invoke(train_command, ["phase=nope"]).exit_code == 2
    missing_init = runner.invoke(train_command, ["phase=vqgan", f"out_dir={tmp_path / 'x'}"])
    assert missing_init.exit_code == 1 and "init_from" in missing_init.output
    wrong_phase = runner.invoke(train_command, ["--resume", "phase=vqgan", f"out_dir={vqvae_run / 'run'}", "init_from=x"])
    assert wrong_phase.exit_code == 1 and "vqvae" in wrong_phase.output
    args = [
        f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
        for k, v in {
            "phase": "vqgan",
            "init_from": str(vqvae_run / "run" / WEIGHTS),
            "data_dir": str(vqvae_run / "images"),
            "out_dir": str(tmp_path / "cli"),
            "steps": 2,
            "crop": 32,
            "batch_size": 2,
            "validation_images": 2,
            "validation_crop": 32,
            "ms_ssim_scales": 2,
            "disc_width": 8,
            "disc_layers": 2,
            "threads": 1,
        }.items()
    ]
    result = runner.invoke(train_command, args)
    assert result.exit_code == 0, result.output
    assert sorted(load_codec_file(tmp_path / "cli" / WEIGHTS).decoders) == ["fidelity", "realism"]
    # A resume takes the phase from the checkpoint: the command line names only what changes.
    resumed = runner.invoke(train_command, ["--resume", f"out_dir={tmp_path / 'cli'}", "steps=3"])
    assert resumed.exit_code == 0, resumed.output
    state = load_checkpoint(tmp_path / "cli" / LATEST)
    assert state["step"] == 3 and config_from_checkpoint(state).phase == "vqgan"


def test_cli_resume_takes_the_checkpoint_config_and_refuses_what_cannot_continue(tmp_path, vqvae_run):
    run = tmp_path / "run"
    run.mkdir()
    for name in (LATEST, WEIGHTS):
        (run / name).write_bytes((vqvae_run / "run" / name).read_bytes())
    runner = CliRunner()
    changed_model = runner.invoke(train_command, ["--resume", f"out_dir={run}", "steps=6", "model.stages=3"])
    assert changed_model.exit_code == 1 and "model" in changed_model.output
    finished = runner.invoke(train_command, ["--resume", f"out_dir={run}", "steps=4"])
    assert finished.exit_code == 1 and "step 4" in finished.output
    result = runner.invoke(train_command, ["--resume", f"out_dir={run}", "steps=5", "lr=1e-3"])
    assert result.exit_code == 0, result.output
    continued = config_from_checkpoint(load_checkpoint(run / LATEST))
    saved = config_from_checkpoint(load_checkpoint(vqvae_run / "run" / LATEST))
    assert continued == dataclasses.replace(saved, out_dir=str(run), steps=5, lr=1e-3)
    assert load_checkpoint(run / LATEST)["step"] == 5


def test_log_drops_rows_a_resumed_run_will_write_again(tmp_path):
    first = RunLogger(tmp_path)
    for step in range(1, 7):
        first.scalars(step, {"train/loss": float(step)})
    first.close()
    RunLogger(tmp_path, start_step=4).close()  # a crash after step 6, a checkpoint at step 4
    assert [json.loads(row)["step"] for row in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_export_fits_the_static_prior_from_the_weights_or_the_training_state(vqvae_run, tmp_path):
    images = vqvae_run / "images"
    counts = export_model(vqvae_run / "run" / WEIGHTS, tmp_path / "from-weights.safetensors", images)
    assert counts.sum(dim=1).tolist() == [8 * 6 * 5] * TINY.stages  # 8 images of 48×40: 6×5 tokens each
    export_model(vqvae_run / "run" / LATEST, tmp_path / "from-state.safetensors", images)
    from_weights = load_codec_file(tmp_path / "from-weights.safetensors").state_dict()
    for key, value in load_codec_file(tmp_path / "from-state.safetensors").state_dict().items():
        assert torch.equal(from_weights[key], value), key
    assert not torch.equal(from_weights["prior.frequencies"], VQCodec(TINY).state_dict()["prior.frequencies"])


def test_a_leg_state_is_the_weights_in_float16_and_the_next_leg_starts_from_it(vqvae_run, tmp_path):
    latest, leg = vqvae_run / "run" / LATEST, tmp_path / "leg.pt"
    full = load_checkpoint(latest)
    runner = CliRunner()
    written = runner.invoke(leg_state_command, [str(latest), str(leg)])
    assert written.exit_code == 0, written.output
    lean = load_checkpoint(leg)
    assert set(lean) == {"model", "step", "train_config"} and lean["step"] == full["step"]
    assert lean["train_config"] == full["train_config"]
    for key, value in full["model"].items():
        assert torch.equal(lean["model"][key], value.half() if value.is_floating_point() else value), key
    assert leg.stat().st_size < latest.stat().st_size / 4
    # init_from takes it as it takes a full checkpoint, upcast.
    for key, value in load_vqvae(leg).state_dict().items():
        expected = full["model"][key].half().float() if value.is_floating_point() else full["model"][key]
        assert value.dtype == full["model"][key].dtype and torch.equal(value, expected), key
    trained = train_vqvae(tiny_config(vqvae_run, "next-leg", init_from=str(leg)))
    assert not torch.equal(trained.quantizer.stage(0).codebook, load_vqvae(leg).quantizer.stage(0).codebook)

    again = runner.invoke(leg_state_command, [str(latest), str(leg)])
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(leg_state_command, [str(latest), str(leg), "--force"]).exit_code == 0
    # It holds no optimizer, so a resume of it is refused with the way to use it instead.
    run = tmp_path / "run"
    run.mkdir()
    (run / LATEST).write_bytes(leg.read_bytes())
    resumed = runner.invoke(train_command, ["--resume", f"out_dir={run}", "steps=8"])
    assert resumed.exit_code == 1 and "leg state" in resumed.output and "init_from=" in resumed.output
    realism = {**full, "train_config": json.dumps({**json.loads(full["train_config"]), "phase": "vqgan"})}
    with pytest.raises(ValueError, match="only a vqvae checkpoint"):
        leg_state(realism)
    not_a_state = tmp_path / "image.pt"
    Image.new("RGB", (4, 4)).save(not_a_state, format="PNG")
    refused = runner.invoke(leg_state_command, [str(not_a_state), str(tmp_path / "out.pt")])
    assert refused.exit_code == 1 and "not a vqcodec training checkpoint" in refused.output
    assert not (tmp_path / "out.pt").exists()


def test_a_log_reads_the_same_plain_or_xz_compressed(tmp_path):
    logger = RunLogger(tmp_path / "plain")
    for step in (1, 2):
        logger.scalars(step, {"train/loss": 0.5 / step})
    logger.close()
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "metrics.jsonl.xz").write_bytes(lzma.compress((tmp_path / "plain" / "metrics.jsonl").read_bytes()))
    rows = [{"step": 1, "train/loss": 0.5}, {"step": 2, "train/loss": 0.25}]
    assert read_metrics(tmp_path / "plain") == read_metrics(packed) == rows
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        read_metrics(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, root: Path, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # Rank 1's clock runs twice as fast, so alone it would size its schedule to 24 steps and
    # rank 0 to 46: the ranks must agree (on 24) or DDP would hang.
    loop.clock = TickingClock(tick=1.0 + rank)
    vqvae = train_vqvae(
        tiny_config(
            root,
            "vqvae",
            steps=1000,
            batch_size=2,
            warmup_steps=20,
            time_budget=1.0,
            fit_steps_to_budget=True,
            checkpoint_every=1000,
        )
    )
    dist.barrier()  # rank 0 has written the checkpoint the GAN phase starts from
    # Under DDP the budget is checked (and the clock read) only every log_every=3 steps. Rank
    # 1's clock spends the 10 s budget at its fourth check (12 s, step 12); rank 0's would not
    # within the 30 steps (4 s then). Both must stop after step 12, or rank 0 would wait for
    # rank 1 forever.
    loop.clock = TickingClock(tick=1.0 + 2 * rank)
    gan = train_vqgan(
        tiny_config(
            root,
            "gan",
            steps=30,
            batch_size=2,
            phase="vqgan",
            time_budget=10 / 60,
            log_every=3,
            init_from=str(root / "vqvae" / LATEST),
        )
    )
    torch.save({"vqvae": vqvae.state_dict(), "gan": gan.state_dict()}, root / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_two_gloo_processes_end_identical(tmp_path):
    write_images(tmp_path / "images")
    mp.spawn(_ddp_worker, args=(tmp_path, _free_port()), nprocs=2, join=True)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for phase in ("vqvae", "gan"):
        assert_same_state(rank0[phase], rank1[phase])
    assert bool(rank0["vqvae"]["quantizer.stages.0.initialized"])
    assert not torch.equal(
        rank0["gan"]["decoders.realism.to_pixels.1.weight"], rank0["gan"]["decoders.fidelity.to_pixels.1.weight"]
    )
    # Each rank saw different crops, so identical weights mean gradients and codebooks were synchronised.
    assert sorted(train_rows(tmp_path / "gan")) == [3, 6, 9, 12]
    assert max(train_rows(tmp_path / "vqvae")) == 24


def test_grown_codec_keeps_every_trained_part_and_adds_uninitialised_stages(vqvae_run):
    source = load_vqvae(vqvae_run / "run" / LATEST)
    model = grown(add_realism_decoder(source), dataclasses.replace(TINY, stages=4))
    assert list(model.decoders) == ["fidelity"]
    for key, value in source.state_dict().items():
        if not key.startswith("prior."):
            assert torch.equal(model.state_dict()[key], value), key
    assert [bool(model.quantizer.stage(s).initialized) for s in range(4)] == [True, True, False, False]
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(model.encode_indices(image, 2), source.encode_indices(image, 2))


def test_grown_encoder_blocks_start_as_the_identity(vqvae_run):
    source = load_vqvae(vqvae_run / "run" / LATEST)
    deeper = tuple(count + 1 for count in TINY.encoder_blocks)
    model = grown(source, dataclasses.replace(TINY, stages=3, encoder_blocks=deeper))
    assert len(model.encoder.coarse) == len(source.encoder.coarse) + 1
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(model.encoder(image), source.encoder(image))
    assert torch.equal(model.encode_indices(image, 2), source.encode_indices(image, 2))


def test_grown_wider_and_deeper_networks_compute_what_the_source_did(vqvae_run):
    source = load_vqvae(vqvae_run / "run" / LATEST)
    target = dataclasses.replace(
        TINY, width_fine=24, width_coarse=40, encoder_blocks=(2, 2), decoder_blocks=(2, 3), codebook_size=8, stages=3
    )
    model = grown(source, target)
    assert model.config == target
    image = torch.rand(2, 3, 32, 48)
    latent = source.encoder(image)
    assert torch.equal(model.encoder(image), latent)
    assert torch.equal(model.decoders["fidelity"](latent), source.decoders["fidelity"](latent))
    # Codebooks of another size cannot be kept: every stage starts from k-means.
    assert not any(bool(model.quantizer.stage(s).initialized) for s in range(3))


def test_grown_added_channels_learn(vqvae_run):
    """The zero weights that read the added channels get gradients, so the width is used."""
    source = load_vqvae(vqvae_run / "run" / LATEST)
    model = grown(source, dataclasses.replace(TINY, width_fine=24))
    reader = model.encoder.down[1].weight  # reads the fine channels, the added ones at zero
    assert not reader[:, 16 * 4 :].any()
    model.encoder(torch.rand(1, 3, 32, 32)).square().sum().backward()
    assert reader.grad is not None and reader.grad[:, 16 * 4 :].abs().sum() > 0


@pytest.mark.parametrize(
    "change",
    [
        dict(stages=1),
        dict(latent_dim=4),
        dict(stride=4),
        dict(width_fine=8),
        dict(width_coarse=16),
        dict(decoder_blocks=(1, 0)),
        dict(encoder_blocks=(0, 1)),
    ],
)
def test_grown_refuses_another_architecture_or_smaller_networks(change):
    with pytest.raises(ValueError, match="same stride and latent dimension"):
        grown(VQCodec(TINY), dataclasses.replace(TINY, **change))


def test_grown_may_have_fewer_stages_of_another_codebook_size():
    model = grown(VQCodec(TINY), dataclasses.replace(TINY, codebook_size=32, stages=1))
    assert model.config.stages == 1


def test_init_from_takes_an_installed_model_by_name():
    shipped = zoo.load()
    source = load_vqvae(shipped.name)
    assert torch.equal(source.encoder.stem[1].weight, shipped.codec.encoder.stem[1].weight)
    # Its own copy: a realism phase trains the model it is given, never the one coding uses.
    assert source.encoder.stem[1].weight.data_ptr() != shipped.codec.encoder.stem[1].weight.data_ptr()
    with pytest.raises(FileNotFoundError, match=f"init_from not found: no-such-model .*{shipped.name}"):
        load_vqvae("no-such-model")


def test_a_vqvae_run_from_weights_with_more_stages_trains_them_from_k_means(vqvae_run, tmp_path):
    config = tiny_config(
        vqvae_run, "grown", init_from=str(vqvae_run / "run" / WEIGHTS), model=dataclasses.replace(TINY, stages=3)
    )
    model = train_vqvae(config)
    state = load_checkpoint(Path(config.out_dir) / LATEST)
    assert state["step"] == config.steps
    assert all(bool(model.quantizer.stage(s).initialized) for s in range(3))
    source = load_vqvae(vqvae_run / "run" / WEIGHTS)
    assert not torch.equal(model.quantizer.stage(0).codebook, source.quantizer.stage(0).codebook)  # it trained on


def test_a_vqvae_run_refuses_an_init_that_does_not_fit_before_writing_anything(vqvae_run, tmp_path):
    config = tiny_config(
        vqvae_run, "bad", init_from=str(vqvae_run / "run" / WEIGHTS), model=dataclasses.replace(TINY, latent_dim=4)
    )
    with pytest.raises(ValueError, match="same stride and latent dimension"):
        train_vqvae(config)
    assert not Path(config.out_dir).exists()
