"""Context prior: coding order, the frequency contract, integer exactness (batch, threads,
golden values), file round trip, and bits saved over a static prior after a short training."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vqcodec.entropy.context import ContextPrior, PriorConfig
from vqcodec.entropy.fixedpoint import floor_scaled
from vqcodec.entropy.prior_file import load_prior_file, save_prior_file
from vqcodec.train.config import PriorTrainConfig
from vqcodec.train.prior_loop import coding_bits, make_batch, static_bits
from vqcodec.train.prior_tables import fit_neighbour_tables, fit_transitions

SMALL = PriorConfig(stages=2, codebook_size=32, width=16, blocks=2, schedule=("pyramid", "quad"))


def formula_prior(config: PriorConfig = SMALL) -> ContextPrior:
    """Weights from a fixed formula (no RNG), so golden values do not depend on torch's generator."""
    prior = ContextPrior(config)
    with torch.no_grad():
        for i, (_name, param) in enumerate(sorted(prior.named_parameters())):
            wave = torch.sin(torch.arange(param.numel(), dtype=torch.float64) * 1.618 + i)
            param.copy_((0.6 * wave).view(param.shape))
        wave = torch.sin(torch.arange(prior.neighbour.numel(), dtype=torch.float64) * 0.618)
        prior.neighbour.copy_((120 * wave).round().view(prior.neighbour.shape).to(torch.int8))
    return prior.eval()


def random_grid(seed: int, stages: int = 2, h: int = 9, w: int = 11, k: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, k, (stages, h, w)), rng.random((stages, h, w)) < 0.5


def test_groups_partition_each_stage_in_stage_major_order():
    groups = formula_prior().groups(2, 9, 11)
    stages = [stage for stage, _ in groups]
    assert stages == sorted(stages) and len(groups) == 5 + 4
    for stage in (0, 1):
        masks = np.stack([mask for s, mask in groups if s == stage])
        assert (masks.sum(axis=0) == 1).all()


def test_groups_skip_empty_masks_and_reject_bad_sizes():
    assert all(mask.any() for _, mask in formula_prior().groups(2, 1, 1))
    with pytest.raises(ValueError):
        formula_prior().groups(3, 4, 4)


def test_frequencies_follow_the_contract():
    prior = formula_prior()
    tokens, known = random_grid(0)
    mask = np.random.default_rng(1).random((9, 11)) < 0.4
    freq = prior.frequencies(tokens, known, 1, mask)
    assert freq.dtype == np.float64 and freq.shape == (mask.sum(), 32)
    assert np.array_equal(freq, np.round(freq))  # whole numbers: the coder's divisions are exact IEEE ops on them
    assert freq.min() >= 1 and freq.sum(axis=1).max() < 2**31
    assert len({tuple(row) for row in freq}) > 1  # the context changes the distribution


def test_frequencies_ignore_unknown_values_and_follow_row_major_order():
    prior = formula_prior()
    tokens, known = random_grid(2)
    mask = np.ones((9, 11), dtype=bool)
    full = prior.frequencies(tokens, known, 0, mask)
    scrambled = np.where(known, tokens, (tokens + 7) % 32)
    np.testing.assert_array_equal(prior.frequencies(scrambled, known, 0, mask), full)
    sub = np.zeros_like(mask)
    sub[3, 4] = sub[7, 1] = True
    np.testing.assert_array_equal(prior.frequencies(tokens, known, 0, sub), full[[3 * 11 + 4, 7 * 11 + 1]])


def test_integer_logits_do_not_depend_on_batch_composition():
    prior = formula_prior()
    grids = [random_grid(seed) for seed in (3, 4, 5)]
    tokens = torch.from_numpy(np.stack([g[0] for g in grids]))
    known = torch.from_numpy(np.stack([g[1] for g in grids]))
    masks = torch.ones((3, 9, 11), dtype=torch.bool)
    batched = prior.integer_logits(tokens, known, 1, masks).view(3, 99, -1)
    for b in range(3):
        alone = prior.integer_logits(tokens[b : b + 1], known[b : b + 1], 1, masks[b : b + 1])
        assert torch.equal(alone, batched[b])


def test_features_at_positions_equal_the_full_grid_features_there():
    prior = formula_prior()
    grids = [random_grid(seed) for seed in (8, 9)]
    tokens = torch.from_numpy(np.stack([g[0] for g in grids]))
    known = torch.from_numpy(np.stack([g[1] for g in grids]))
    stages = torch.tensor([1, 1])
    positions = torch.from_numpy(np.random.default_rng(10).random((2, 9, 11)) < 0.3)
    positions[0, 0, 0] = positions[1, 8, 10] = True  # corners: the padded border is read
    with torch.no_grad():
        full = prior.trunk(tokens, known, stages)
        assert torch.equal(prior.trunk(tokens, known, stages, positions), full[positions])
        assert not torch.equal(full[positions], torch.zeros_like(full[positions]))


def test_floor_scaled_works_in_place_only_where_no_gradient_flows():
    values = torch.tensor([1.5, -2.25, 7.0], requires_grad=True)
    floored = floor_scaled(values * 1.0, 2.0)
    floored.sum().backward()
    assert torch.equal(floored.detach(), torch.tensor([3.0, -5.0, 14.0]))
    assert torch.equal(values.grad, torch.full((3,), 2.0))  # straight through, times the scale
    accumulator = torch.tensor([1.5, -2.25, 7.0])
    assert floor_scaled(accumulator, 0.5) is accumulator  # the coding path allocates nothing
    assert torch.equal(accumulator, torch.tensor([0.0, -2.0, 3.0]))


def test_frequencies_do_not_depend_on_thread_count():
    prior = formula_prior(PriorConfig(stages=2, codebook_size=64, width=32, blocks=2, schedule=("quad", "quad")))
    tokens, known = random_grid(6, h=24, w=40, k=64)
    mask = np.ones((24, 40), dtype=bool)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = prior.frequencies(tokens, known, 1, mask)
        torch.set_num_threads(2)
        multi = prior.frequencies(tokens, known, 1, mask)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(single, multi)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_frequencies_match_between_cpu_and_cuda():
    prior = formula_prior(PriorConfig(stages=2, codebook_size=64, width=64, blocks=2, schedule=("quad", "quad")))
    tokens, known = random_grid(10, h=24, w=40, k=64)
    mask = np.ones((24, 40), dtype=bool)
    on_cpu = prior.frequencies(tokens, known, 1, mask)
    np.testing.assert_array_equal(prior.cuda().frequencies(tokens, known, 1, mask), on_cpu)


# Frequencies of `formula_prior` on `random_grid(7)`, stage 1, whole grid. A change here means
# streams written before it no longer decode: bump the prior's FORMAT_VERSION if intended.
GOLDEN_SHA256 = "19f24f9a780de32e3861edf356993cbb64ae94bd6c69d5faaf4b25ecd3ab2802"
GOLDEN_ROW0 = [1, 1, 6, 775, 9441, 51039, 29081, 285]


def test_golden_frequencies_keep_matching():
    prior = formula_prior()
    tokens, known = random_grid(7)
    freq = prior.frequencies(tokens, known, 1, np.ones((9, 11), dtype=bool))
    assert freq[0, :8].tolist() == GOLDEN_ROW0
    assert hashlib.sha256(freq.astype("<i8").tobytes()).hexdigest() == GOLDEN_SHA256


def test_exp_table_is_fixed():
    table = formula_prior().exp_table
    assert table[0] == 65536 and table[-1] == 1 and table.numel() == 172 and int(table.sum()) == 1081662


def test_save_and_load_give_identical_frequencies(tmp_path):
    prior = formula_prior()
    save_prior_file(prior, tmp_path / "prior.safetensors")
    loaded = load_prior_file(tmp_path / "prior.safetensors")
    assert loaded.config == SMALL
    tokens, known = random_grid(8)
    mask = np.ones((9, 11), dtype=bool)
    np.testing.assert_array_equal(loaded.frequencies(tokens, known, 1, mask), prior.frequencies(tokens, known, 1, mask))


def test_a_prior_loaded_or_built_inside_inference_mode_still_codes(tmp_path):
    # Inference tensors keep no version counter, which the coding-path caches key on.
    prior = formula_prior()
    save_prior_file(prior, tmp_path / "prior.safetensors")
    tokens, known = random_grid(8)
    mask = np.ones((9, 11), dtype=bool)
    expected = prior.frequencies(tokens, known, 1, mask)
    with torch.inference_mode():
        loaded = load_prior_file(tmp_path / "prior.safetensors")
        built = ContextPrior(SMALL).eval()
        built.load_state_dict(prior.state_dict())
        np.testing.assert_array_equal(built.frequencies(tokens, known, 1, mask), expected)
    np.testing.assert_array_equal(loaded.frequencies(tokens, known, 1, mask), expected)


def test_load_rejects_files_that_are_not_priors(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="context-prior"):
        load_prior_file(tmp_path / "other.safetensors")


def test_bad_arguments_raise_value_errors():
    prior = formula_prior()
    tokens, known = random_grid(9)
    with pytest.raises(ValueError):
        prior.frequencies(tokens, known, 2, np.ones((9, 11), dtype=bool))
    with pytest.raises(ValueError):
        prior.frequencies(tokens, known, 0, np.ones((9, 10), dtype=bool))
    with pytest.raises(ValueError):
        PriorConfig(width=200)


def blocky_grids(count: int, seed: int) -> list[np.ndarray]:
    """Token grids with structure a context model can learn: stage 0 is constant on 4×4
    blocks, stage 1 is a fixed function of stage 0 at the same position plus rare noise."""
    rng = np.random.default_rng(seed)
    grids = []
    for _ in range(count):
        coarse = rng.integers(0, 32, (5, 5)).repeat(4, 0).repeat(4, 1)[:18, :18]
        fine = np.where(rng.random(coarse.shape) < 0.1, rng.integers(0, 32, coarse.shape), (coarse * 7 + 3) % 32)
        grids.append(np.stack([coarse, fine]).astype(np.int16))
    return grids


def test_neighbour_tables_read_both_sides_of_an_offset():
    config = PriorConfig(stages=1, codebook_size=8, width=4, blocks=0, schedule=("all",))
    prior = ContextPrior(config).eval()
    with torch.no_grad():
        prior.neighbour.zero_()
        prior.neighbour_gain.fill_(1.0)
        for a in range(8):  # the token right of position p is a ⇒ token (a+1) % 8 at p
            prior.neighbour[0, 0, a, (a + 1) % 8] = 64
    tokens = torch.tensor([[[[5, 0, 2]]]])
    rows = torch.tensor([[[False, True, False]]])
    only_right = torch.tensor([[[[False, False, True]]]])
    only_left = torch.tensor([[[[True, False, False]]]])
    assert int(prior.neighbour_logits(tokens, only_right, 0, rows).argmax()) == 3
    assert int(prior.neighbour_logits(tokens, only_left, 0, rows).argmax()) == 4  # (4+1) % 8 == 5
    assert not prior.neighbour_logits(tokens, torch.zeros_like(only_left), 0, rows).any()


def test_tables_derived_for_coding_follow_changes_to_the_weights():
    prior = formula_prior()
    tokens, known = random_grid(11)
    mask = np.ones((9, 11), dtype=bool)
    before = prior.frequencies(tokens, known, 1, mask)
    with torch.no_grad():
        prior.neighbour[1].neg_()
    after_neighbour = prior.frequencies(tokens, known, 1, mask)
    assert not np.array_equal(before, after_neighbour)
    reloaded = ContextPrior(SMALL).eval()
    reloaded.load_state_dict(formula_prior().state_dict())
    reloaded.frequencies(tokens, known, 1, mask)  # fills its caches
    reloaded.load_state_dict(prior.state_dict())
    np.testing.assert_array_equal(reloaded.frequencies(tokens, known, 1, mask), after_neighbour)
    with torch.no_grad():
        prior.transition.mul_(2.0)
    assert not np.array_equal(prior.frequencies(tokens, known, 1, mask), after_neighbour)


def test_coding_keeps_one_stage_of_neighbour_rows_and_refills_it_when_the_stage_changes():
    prior = formula_prior()
    tokens, known = random_grid(12)
    mask = np.ones((9, 11), dtype=bool)
    fresh = {stage: formula_prior().frequencies(tokens, known, stage, mask) for stage in (0, 1)}
    for stage in (0, 1, 0, 1):  # one buffer serves both stages in turn
        np.testing.assert_array_equal(prior.frequencies(tokens, known, stage, mask), fresh[stage])
    assert "neighbour_rows0" not in prior._derived_cache and "neighbour_rows1" not in prior._derived_cache
    # Training reads the same rows, each stage from its own tensor that backward can rely on.
    grid, where = torch.from_numpy(tokens)[None], (torch.zeros(99, dtype=torch.int64), *torch.ones(9, 11).nonzero(as_tuple=True))
    known_grid = torch.from_numpy(known)[None]
    for stage in (0, 1):
        with torch.no_grad():
            coded = prior.neighbour_logits_at(grid, known_grid, stage, where)
        trained = prior.neighbour_logits_at(grid, known_grid, stage, where)
        trained.sum().backward()
        torch.testing.assert_close(trained.detach(), coded, rtol=0, atol=0)


def test_a_stage_with_no_known_token_of_its_own_skips_the_neighbour_rows():
    prior = formula_prior()
    tokens, known = random_grid(13)
    known[1] = False  # how a stage coded in one group starts
    mask = np.ones((9, 11), dtype=bool)
    prior.frequencies(tokens, known, 0, mask)  # the rows now hold stage 0's
    filled = prior._coding_rows_key
    coded = prior.frequencies(tokens, known, 1, mask)
    assert prior._coding_rows_key == filled  # stage 1's rows were never needed
    grid, known_grid = torch.from_numpy(tokens)[None], torch.from_numpy(known)[None]
    where = (torch.zeros(99, dtype=torch.int64), *torch.ones(9, 11).nonzero(as_tuple=True))
    with torch.enable_grad():  # the long way, through every zero row
        summed = prior.neighbour_logits_at(grid, known_grid, 1, where)
    assert torch.equal(summed.detach(), torch.zeros(99, SMALL.codebook_size)) and summed.requires_grad
    known[1, 4, 5] = True  # one known neighbour, and the rows are read again
    assert not np.array_equal(prior.frequencies(tokens, known, 1, mask), coded)
    assert prior._coding_rows_key != filled


def test_threads_sharing_a_prior_get_the_frequencies_of_their_own_stage():
    from concurrent.futures import ThreadPoolExecutor

    prior = formula_prior()
    tokens, known = random_grid(13)
    mask = np.ones((9, 11), dtype=bool)
    expected = {stage: prior.frequencies(tokens, known, stage, mask) for stage in (0, 1)}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: (job % 2, prior.frequencies(tokens, known, job % 2, mask)), range(64)))
    for stage, frequencies in results:
        np.testing.assert_array_equal(frequencies, expected[stage])


def test_fitted_neighbour_tables_favour_pairs_seen_in_training():
    prior = ContextPrior(SMALL)
    rng = np.random.default_rng(0)
    left = rng.integers(0, 32, (2, 12, 6))
    grid = np.stack([left, (left * 5 + 1) % 32], axis=-1).reshape(2, 12, 12)  # x[2j+1] = 5·x[2j] + 1
    fit_neighbour_tables(prior, [grid], smoothing=1.0)  # light smoothing: this grid holds few pairs
    table = prior.neighbour[0, 0].long()  # offset (0, 1): [token at p+(0,1), token at p]
    pairs = {(int(grid[0, y, 2 * j + 1]), int(grid[0, y, 2 * j])) for y in range(12) for j in range(6)}
    seen = torch.tensor([table[t, x] for t, x in pairs])
    assert (seen > 0).all() and seen.float().mean() > table.float().mean() + 16


def test_short_training_beats_the_static_prior_and_codes_losslessly():
    from vqcodec.entropy.grid_coding import decode_grid, encode_grid

    torch.manual_seed(0)
    config = PriorTrainConfig(prior=SMALL, steps=150, batch_size=8, crop=16, lr=1e-2, warmup_steps=10)
    train, test = blocky_grids(32, 0), blocky_grids(4, 1)
    prior = ContextPrior(SMALL)
    fit_transitions(prior, train)
    fit_neighbour_tables(prior, train)
    optimizer = torch.optim.Adam(prior.parameters(), lr=config.lr)
    for step in range(config.steps):
        loss = prior(**make_batch(train, config, step)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prior.eval()
    context, static = coding_bits(prior, test), static_bits(train, test, 2, 32)
    assert (context < 0.75 * static).all(), (context, static)  # measured: 0.59 and 0.20 of static
    grid = test[0].astype(np.int64)
    payloads = encode_grid(prior, grid)
    assert 8 * sum(map(len, payloads)) < 0.75 * static.mean() * grid.size
    np.testing.assert_array_equal(decode_grid(prior, payloads, 18, 18, 32), grid)
    # Coding a group in chunks (bounded memory on large images) writes the very same stream.
    assert encode_grid(prior, grid, chunk_rows=7) == payloads
    np.testing.assert_array_equal(decode_grid(prior, payloads, 18, 18, 32, chunk_rows=5), grid)


def test_token_cache_is_rebuilt_when_an_image_changes(tmp_path, capsys):
    from PIL import Image

    from vqcodec.model import CodecConfig, VQCodec
    from vqcodec.train.checkpoint import export_weights
    from vqcodec.train.token_cache import load_or_build_cache

    codec_path = tmp_path / "codec.safetensors"
    export_weights(
        VQCodec(CodecConfig(width_fine=8, width_coarse=8, latent_dim=4, codebook_size=16, stages=2)), codec_path, "tiny"
    )
    rng = np.random.default_rng(0)
    files = []
    for i in range(2):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(files[-1])
    config = PriorTrainConfig(prior=SMALL, crop=2, max_side=16)
    cache = tmp_path / "tokens.safetensors"
    first = load_or_build_cache(codec_path, files, cache, config)
    assert [g.shape for g in load_or_build_cache(codec_path, files, cache, config)] == [g.shape for g in first]
    assert "rebuilding" not in capsys.readouterr().out  # unchanged images: read from the cache
    Image.fromarray(rng.integers(0, 255, (24, 16, 3), dtype=np.uint8)).save(files[1])  # same name, new content
    rebuilt = load_or_build_cache(codec_path, files, cache, config)
    assert "rebuilding" in capsys.readouterr().out
    assert rebuilt[1].shape != first[1].shape


def test_train_prior_on_a_folder_without_images_is_a_clear_error(tmp_path):
    from click.testing import CliRunner

    from vqcodec.model import CodecConfig, VQCodec
    from vqcodec.train.checkpoint import export_weights
    from vqcodec.train.commands import train_prior_command

    codec_path = tmp_path / "codec.safetensors"
    export_weights(
        VQCodec(CodecConfig(width_fine=8, width_coarse=8, latent_dim=4, codebook_size=16, stages=2)), codec_path, "tiny"
    )
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        train_prior_command, [str(tmp_path / "empty"), str(tmp_path / "p.safetensors"), "--codec", str(codec_path)]
    )
    assert result.exit_code == 1 and "no .jpg/.png/.webp images" in result.output
    assert not (tmp_path / "p.safetensors").exists()


def test_token_cache_from_the_rate_distortion_search_is_keyed_by_its_prior(tmp_path, capsys):
    from PIL import Image

    from vqcodec.entropy.rdo import quantize_for_rate
    from vqcodec.imaging import to_padded_tensor
    from vqcodec.model import CodecConfig, VQCodec
    from vqcodec.train.checkpoint import export_weights
    from vqcodec.train.token_cache import load_or_build_cache

    codec = VQCodec(CodecConfig(width_fine=8, width_coarse=8, latent_dim=4, codebook_size=32, stages=2)).eval()
    export_weights(codec, tmp_path / "codec.safetensors", "tiny")
    save_prior_file(formula_prior(), tmp_path / "search.safetensors")
    image = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "0.png")
    args = (tmp_path / "codec.safetensors", [tmp_path / "0.png"], tmp_path / "tokens.safetensors")
    nearest = load_or_build_cache(*args, PriorTrainConfig(prior=SMALL, crop=2, max_side=32))[0]
    config = PriorTrainConfig(prior=SMALL, crop=2, max_side=32, search_lambda=8.0)
    searched = load_or_build_cache(*args, config, tmp_path / "search.safetensors")[0]
    assert "rebuilding" in capsys.readouterr().out  # another search, another cache
    with torch.inference_mode():
        latent = codec.encoder(to_padded_tensor(image, 8))[0]
    expected = quantize_for_rate(latent, codec.quantizer.codebooks(), formula_prior(), [8.0, 8.0])
    np.testing.assert_array_equal(searched, expected)
    assert not np.array_equal(searched, nearest)
    small = PriorConfig(stages=2, codebook_size=16, width=4, blocks=0, schedule=("quad", "quad"))
    save_prior_file(ContextPrior(small), tmp_path / "foreign.safetensors")
    with pytest.raises(ValueError, match="does not fit"):
        load_or_build_cache(*args, config, tmp_path / "foreign.safetensors")


def test_prior_checkpoints_from_before_a_new_config_field_still_resume(tmp_path):
    import json

    from vqcodec.train.checkpoint import save_checkpoint
    from vqcodec.train.prior_loop import _restore

    config = PriorTrainConfig(prior=SMALL)
    prior = formula_prior().train()
    optimizer = torch.optim.AdamW(prior.parameters())
    older = json.loads(config.to_json())
    del older["search_lambda"]  # written before the field existed
    save_checkpoint(
        tmp_path / "p.pt",
        {
            "model": prior.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": 7,
            "train_config": json.dumps(older, sort_keys=True),
            "codec_sha256": "abc",
        },
    )
    assert _restore(prior, optimizer, tmp_path / "p.pt", config, "abc") == 7
    with pytest.raises(Exception, match="other settings"):
        _restore(prior, optimizer, tmp_path / "p.pt", PriorTrainConfig(prior=SMALL, search_lambda=0.08), "abc")
