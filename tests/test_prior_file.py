"""Context-prior files (`vqcodec.entropy.prior_file`): integer tables and weights, xz
compression, the version-2 and version-3 files of retired priors, damaged files, and the
lossy table compaction."""

from __future__ import annotations

import lzma

import numpy as np
import pytest
import safetensors.torch
import torch

from test_context_prior import SMALL, formula_prior, random_grid
from vqcodec.entropy.prior_file import (
    FORMAT,
    compact_neighbour_tables,
    integer_state,
    integer_transition,
    load_prior_file,
    save_prior_file,
)


def all_frequencies(prior) -> np.ndarray:
    tokens, known = random_grid(3)
    return prior.frequencies(tokens, known, 1, np.ones((9, 11), dtype=bool))


def spread_transition(prior):
    """Transition rows at offsets spread over more than int8 can hold (one nat apart), each
    row's own span within it, so the row shift matters and loses nothing."""
    with torch.no_grad():
        rows = prior.transition.shape[1]
        prior.transition.add_(torch.arange(rows, dtype=torch.float32)[None, :, None])
    return prior


def test_integer_transition_fits_int8_and_keeps_every_frequency(tmp_path):
    prior = spread_transition(formula_prior())
    raw = prior._integer_transition(prior.transition.detach())
    assert float(raw.amax() - raw.amin()) > 255  # the shift is needed, and each row still fits
    table = integer_transition(prior)
    assert table.dtype == torch.int8 and int(table.amax(dim=2).min()) == 127
    save_prior_file(prior, tmp_path / "p.safetensors.xz")
    assert (tmp_path / "p.safetensors.xz").read_bytes()[:6] == b"\xfd7zXZ\x00"
    np.testing.assert_array_equal(all_frequencies(load_prior_file(tmp_path / "p.safetensors.xz")), all_frequencies(prior))


def scaled_weights(prior):
    """Weights at scales far apart (some rows tiny, some huge, one all zero), so that every
    layer's frac bits differ between rows, reach both clamps of `frac_bits`, and must come
    back from the file exactly."""
    with torch.no_grad():
        for param in (prior.head.weight, prior.hidden.weight, prior.blocks[0].spatial.weight):
            rows = param.shape[0] if param.ndim != 3 else param.shape[1]
            spread = torch.logspace(-12, 4, rows, base=2.0)
            param.mul_(spread.view(1, -1, 1) if param.ndim == 3 else spread.view(-1, *[1] * (param.ndim - 1)))
        prior.head.weight[:, 0].zero_()
        prior.head.weight[:, 1].fill_(1e-12)
        prior.head.weight[:, 2].fill_(1e6)
        prior.head.weight[:, 3, 0] = 126.8 * 2.0**-7  # the peak rounds to 127 at scale 2**7
        prior.head.weight[:, 4, 0] = -63.6 * 2.0**-9  # the peak rounds to -64 at scale 2**9
        prior.hidden.weight[0, 0] = 126.9  # the largest entry of its row, at scale 2**0
        prior.neighbour_gain.copy_(torch.linspace(-1, 6, prior.neighbour_gain.numel()).view_as(prior.neighbour_gain))
    return prior


def test_weights_are_stored_as_the_integers_the_coding_path_reads(tmp_path):
    prior = scaled_weights(spread_transition(formula_prior()))
    save_prior_file(prior, tmp_path / "p.safetensors.xz")
    stored = safetensors.torch.load(lzma.decompress((tmp_path / "p.safetensors.xz").read_bytes()))
    assert stored["head.weight"].dtype == torch.int8 and stored["embedding"].dtype == torch.int8
    assert stored["head.bias"].dtype == torch.int32 and stored["head.frac_bits"].shape == prior.head.bias.shape
    assert not any(value.is_floating_point() for value in stored.values())
    bits = stored["head.frac_bits"].int()
    assert int(bits.min()) == -8 and int(bits.max()) == 30  # both clamps reached
    assert (stored["head.weight"][:, 3, 0] == 127).all() and (stored["head.weight"][:, 4, 0] == -64).all()
    assert int(stored["hidden.weight"][0].abs().max()) == 127
    loaded = load_prior_file(tmp_path / "p.safetensors.xz")
    original, reloaded = integer_state(prior), integer_state(loaded)
    assert original.keys() == reloaded.keys()
    for key, value in original.items():
        assert torch.equal(reloaded[key], value), key
    for stage in range(SMALL.stages):
        tokens, known = random_grid(stage + 5)
        mask = np.ones((9, 11), dtype=bool)
        np.testing.assert_array_equal(
            loaded.frequencies(tokens, known, stage, mask), prior.frequencies(tokens, known, stage, mask)
        )


def test_version_3_files_of_retired_priors_still_load(tmp_path):
    prior = spread_transition(formula_prior())
    state = {key: value.contiguous() for key, value in prior.state_dict().items()}
    state["transition"] = integer_transition(prior)  # version 3: integer tables, float32 weights
    metadata = {"format": FORMAT, "version": "3", "config": SMALL.to_json(), "description": ""}
    (tmp_path / "old.safetensors.xz").write_bytes(lzma.compress(safetensors.torch.save(state, metadata)))
    np.testing.assert_array_equal(all_frequencies(load_prior_file(tmp_path / "old.safetensors.xz")), all_frequencies(prior))


def test_version_2_files_of_retired_priors_still_load(tmp_path):
    prior = formula_prior()
    state = {key: value.contiguous() for key, value in prior.state_dict().items()}
    metadata = {"format": FORMAT, "version": "2", "config": SMALL.to_json(), "description": ""}
    safetensors.torch.save_file(state, str(tmp_path / "old.safetensors"), metadata=metadata)
    np.testing.assert_array_equal(all_frequencies(load_prior_file(tmp_path / "old.safetensors")), all_frequencies(prior))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "future version", "scale missing", "scale out of range"])
def test_damaged_or_foreign_files_are_refused_with_a_clear_error(tmp_path, damage):
    path = tmp_path / "p.safetensors.xz"
    save_prior_file(formula_prior(), path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(lzma.compress(b"\x08" + bytes(200)))
    elif damage == "future version":
        inner = lzma.decompress(data).replace(b'"version":"4"', b'"version":"9"')
        path.write_bytes(lzma.compress(inner))
    else:  # int8 weights would load as if their scale were 1, or at 2**-100
        state = integer_state(formula_prior())
        if damage == "scale missing":
            del state["head.frac_bits"]
        else:
            state["head.frac_bits"][0, 0] = 100
        metadata = {"format": FORMAT, "version": "4", "config": SMALL.to_json(), "description": ""}
        path.write_bytes(lzma.compress(safetensors.torch.save(state, metadata)))
    with pytest.raises(ValueError, match="context-prior"):
        load_prior_file(path)


def test_compaction_shares_the_diagonal_tables_and_rounds_entries_to_the_step():
    prior = formula_prior()
    before = prior.neighbour.clone()
    compact_neighbour_tables(prior, 5)
    after = prior.neighbour
    assert torch.equal(after[:, 2], after[:, 3]) and not torch.equal(before[:, 2], before[:, 3])
    assert (after.int() % 5 == 0).all() or (after.int().abs() == 127).any()
    assert (after[:, :2].int() - before[:, :2].int()).abs().max() <= 3  # axial tables: rounding only
    with pytest.raises(ValueError, match="step"):
        compact_neighbour_tables(prior, 0)


def test_the_same_prior_and_weights_write_the_same_bytes_every_time(tmp_path):
    # The zoo names files by their sha256; safetensors alone orders its header at random.
    from vqcodec.model import CodecConfig, VQCodec
    from vqcodec.train.checkpoint import export_weights

    prior = formula_prior()
    codec = VQCodec(CodecConfig(width_fine=8, width_coarse=8, latent_dim=4, codebook_size=16, stages=2))
    priors, weights = set(), set()
    for attempt in range(6):
        save_prior_file(prior, tmp_path / f"prior{attempt}.safetensors.xz", description="λ’s prior")
        export_weights(codec, tmp_path / f"codec{attempt}.safetensors", "λ’s codec")
        priors.add((tmp_path / f"prior{attempt}.safetensors.xz").read_bytes())
        weights.add((tmp_path / f"codec{attempt}.safetensors").read_bytes())
    assert len(priors) == 1 and len(weights) == 1
    np.testing.assert_array_equal(all_frequencies(load_prior_file(tmp_path / "prior0.safetensors.xz")), all_frequencies(prior))
    assert safetensors.torch.load(weights.pop()).keys() == codec.state_dict().keys()
