"""Context-prior files (`vqcodec.entropy.prior_file`): integer tables, xz compression, the
version-2 files of retired priors, damaged files, and the lossy table compaction."""

from __future__ import annotations

import lzma

import numpy as np
import pytest
import safetensors.torch
import torch

from test_context_prior import SMALL, formula_prior, random_grid
from vqcodec.entropy.prior_file import FORMAT, compact_neighbour_tables, integer_transition, load_prior_file, save_prior_file


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


def test_version_2_files_of_retired_priors_still_load(tmp_path):
    prior = formula_prior()
    state = {key: value.contiguous() for key, value in prior.state_dict().items()}
    metadata = {"format": FORMAT, "version": "2", "config": SMALL.to_json(), "description": ""}
    safetensors.torch.save_file(state, str(tmp_path / "old.safetensors"), metadata=metadata)
    np.testing.assert_array_equal(all_frequencies(load_prior_file(tmp_path / "old.safetensors")), all_frequencies(prior))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "future version"])
def test_damaged_or_foreign_files_are_refused_with_a_clear_error(tmp_path, damage):
    path = tmp_path / "p.safetensors.xz"
    save_prior_file(formula_prior(), path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(lzma.compress(b"\x08" + bytes(200)))
    else:
        inner = lzma.decompress(data).replace(b'"version":"3"', b'"version":"9"')
        path.write_bytes(lzma.compress(inner))
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
