"""Weights outside the zoo: codec and context-prior files by path, through the API and the CLI,
and `vqcodec models`."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import vqcodec
from tests.conftest import smooth_image
from vqcodec import BitstreamError, zoo
from vqcodec.cli import main

SHIPPED = Path(str(zoo.resources.files("vqcodec.weights")))


def _export_variant(path: Path, nudge: float) -> Path:
    """Codec weights other than the shipped ones: one decoder bias nudged."""
    from vqcodec.train.checkpoint import export_weights

    codec = copy.deepcopy(zoo.load_model().codec)
    with torch.no_grad():
        bias = [p for name, p in codec.decoders["fidelity"].named_parameters() if name.endswith("bias")][-1]
        bias += nudge
    export_weights(codec, path, "a test variant")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    shutil.copy(SHIPPED / zoo.MODELS[zoo.DEFAULT_MODEL].priors[0].name, folder / "prior.safetensors.xz")
    return {
        "codec": _export_variant(folder / "My Codec.safetensors", 1e-3),
        "other": _export_variant(folder / "other.safetensors", 2e-3),
        "prior": folder / "prior.safetensors.xz",
    }


def test_a_weights_file_writes_its_name_and_hash_and_decodes_only_with_itself(files):
    image = smooth_image(32, 24)
    data = vqcodec.compress(image, model=files["codec"], stages=2)
    header = vqcodec.read_header(data)
    assert header.model_id == "my-codec" and header.prior == "static"  # no context prior without a prior file
    assert header.weights_hash == bytes.fromhex(zoo.file_sha256(files["codec"]))[:8]
    assert vqcodec.decompress(data, model=files["codec"]).size == (32, 24)
    assert vqcodec.decompress(data, model=str(files["codec"])).size == (32, 24)  # a string ending in .safetensors
    with pytest.raises(BitstreamError, match="unknown model 'my-codec'.*model="):
        vqcodec.decompress(data)
    with pytest.raises(BitstreamError, match="weights hash mismatch"):
        vqcodec.decompress(data, model=files["other"])
    with pytest.raises(BitstreamError, match="written by model 'my-codec'"):
        vqcodec.decompress(data, model=zoo.DEFAULT_MODEL)


def test_a_prior_file_codes_with_the_context_prior_and_is_checked_on_decoding(files):
    image = smooth_image(32, 24)
    data = vqcodec.compress(image, model=files["codec"], prior_file=files["prior"], stages=1)
    header = vqcodec.read_header(data)
    assert header.prior == "context" and header.prior_hash == bytes.fromhex(zoo.file_sha256(files["prior"]))[:8]
    with pytest.raises(BitstreamError, match="prior_file="):
        vqcodec.decompress(data, model=files["codec"])
    decoded = vqcodec.decompress(data, model=files["codec"], prior_file=files["prior"], output="numpy")
    static = vqcodec.decompress(
        vqcodec.compress(image, model=files["codec"], prior="static", stages=1, rdo=0), model=files["codec"], output="numpy"
    )
    assert decoded.shape == static.shape == (24, 32, 3)


def test_a_copy_of_the_shipped_weights_is_the_shipped_model(tmp_path, sample_crop):
    shutil.copy(SHIPPED / zoo.MODELS[zoo.DEFAULT_MODEL].weights.name, tmp_path / "renamed.safetensors")
    data = vqcodec.compress(sample_crop, model=tmp_path / "renamed.safetensors", prior="static", stages=1)
    assert vqcodec.read_header(data).model_id == zoo.DEFAULT_MODEL
    assert data == vqcodec.compress(sample_crop, prior="static", stages=1)
    assert vqcodec.decompress(data).size == sample_crop.size


def test_files_that_are_not_weights_are_refused(tmp_path, files):
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not vqcodec codec weights"):
        vqcodec.compress(smooth_image(8, 8), model=tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="not a"):
        vqcodec.compress(smooth_image(8, 8), prior_file=files["codec"])
    with pytest.raises(FileNotFoundError):
        vqcodec.compress(smooth_image(8, 8), model=tmp_path / "missing.safetensors")


def test_model_ids_from_file_names_are_valid_stream_ids():
    assert zoo.model_id_for_file(Path("My Codec v2 (final).safetensors")) == "my-codec-v2--final-"
    assert len(zoo.model_id_for_file(Path("x" * 100 + ".safetensors"))) == 64


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_weights_and_prior_file_on_encode_decode_evaluate(tmp_path, files):
    from PIL import Image

    Image.fromarray(smooth_image(32, 24)).save(tmp_path / "a.png")
    options = ["--weights", files["codec"], "--prior-file", files["prior"]]
    assert run("encode", tmp_path / "a.png", tmp_path / "a.vqc", "--stages", 1, *options).exit_code == 0
    missing = run("decode", tmp_path / "a.vqc", tmp_path / "a.png", "--force")
    assert missing.exit_code == 1 and "unknown model 'my-codec'" in missing.output
    decoded = run("decode", tmp_path / "a.vqc", tmp_path / "out.png", *options)
    assert decoded.exit_code == 0, decoded.output
    evaluated = run("evaluate", tmp_path / "a.png", "--stages", 1, "--json", *options)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["per_image"][0]["bytes"] == (tmp_path / "a.vqc").stat().st_size
    both = run("encode", tmp_path / "a.png", tmp_path / "b.vqc", "--model", zoo.DEFAULT_MODEL, "--weights", files["codec"])
    assert both.exit_code == 2 and "not both" in both.output
    assert run("encode", tmp_path / "a.png", tmp_path / "c.vqc", "--weights", tmp_path / "nope.safetensors").exit_code == 2


def test_models_lists_installed_and_retired_models(tmp_path, monkeypatch):
    monkeypatch.delenv(zoo.WEIGHTS_PATH_VARIABLE, raising=False)
    rows = {row["name"]: row for row in json.loads(run("models", "--json").output)}
    assert set(rows) == set(zoo.MODELS)
    shipped = rows[zoo.DEFAULT_MODEL]
    assert shipped["default"] and not shipped["retired"] and shipped["stages"] == zoo.load_model().codec.config.stages
    assert shipped["bytes"] == (SHIPPED / zoo.MODELS[zoo.DEFAULT_MODEL].weights.name).stat().st_size
    assert shipped["sha256"] == zoo.MODELS[zoo.DEFAULT_MODEL].weights.sha256
    retired = [row for row in rows.values() if row["retired"]]
    assert retired and all("git show" in row["install"] and row["bytes"] is None for row in retired)
    text = run("models").output
    assert f"{zoo.DEFAULT_MODEL} (default): installed" in text and "retired, not installed" in text
