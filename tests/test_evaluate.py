"""`vqcodec evaluate` and the library behind it: every operating point, CompressAI's schema."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import vqcodec
from tests.conftest import smooth_image
from vqcodec.cli import main
from vqcodec.evaluate import evaluate, image_files, score


@pytest.fixture()
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(smooth_image(32, 24, seed=1)).save(images / "a.png")
    Image.fromarray(smooth_image(24, 16, seed=2)).convert("L").save(images / "b.png")
    (images / "notes.txt").write_text("not an image")
    return images


def test_evaluate_a_folder_writes_compressai_json_for_every_operating_point(tmp_path, folder):
    result = CliRunner().invoke(main, ["evaluate", str(folder), "--json", str(tmp_path / "rd.json")])
    assert result.exit_code == 0, result.output
    assert "point" in result.stderr  # the progress bar
    document = json.loads((tmp_path / "rd.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert {"name", "description", "results", "per_image"} <= set(document)
    results = document["results"]
    assert {"bpp", "psnr-rgb", "ms-ssim-rgb"} <= set(results)
    stages = vqcodec.model_info()["stages"]
    assert document["stages"] == list(range(1, stages + 1)) and all(len(values) == stages for values in results.values())
    assert results["bpp"] == sorted(results["bpp"]) and results["psnr-rgb"][-1] > results["psnr-rgb"][0]
    rows = document["per_image"]
    assert len(rows) == 2 * stages and {row["image"] for row in rows} == {str(folder / "a.png"), str(folder / "b.png")}
    first = [row for row in rows if row["stages"] == 1]
    assert results["bpp"][0] == pytest.approx(np.mean([row["bpp"] for row in first]))
    assert all(
        row["bpp"] == pytest.approx(8 * row["bytes"] / (32 * 24 if row["image"].endswith("a.png") else 24 * 16)) for row in rows
    )
    again = CliRunner().invoke(main, ["evaluate", str(folder), "--json", str(tmp_path / "rd.json")])
    assert again.exit_code == 1 and "--force" in again.output


def test_evaluate_prints_a_table_and_refuses_folders_without_images(tmp_path, folder):
    result = CliRunner().invoke(main, ["evaluate", str(folder / "a.png"), "--stages", "1", "--stages", "2"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [line[0] for line in lines[2:]] == ["1", "2"]
    (tmp_path / "empty").mkdir()
    assert CliRunner().invoke(main, ["evaluate", str(tmp_path / "empty")]).exit_code == 2


def test_library_takes_named_images_and_scores_exact_copies_at_the_psnr_cap():
    rgb = smooth_image(16, 16)
    document = evaluate({"gradient": rgb}, stages=[1])
    assert document["per_image"][0]["image"] == "gradient" and document["stages"] == [1]
    exact = score(rgb, rgb)
    assert exact["psnr"] == pytest.approx(100.0) and exact["ms_ssim"] == pytest.approx(1.0)


def test_image_files_expand_folders_and_leave_streams_out(folder):
    (folder / "c.vqc").write_bytes(b"\x89VQC")
    assert image_files([folder]) == [folder / "a.png", folder / "b.png"]


def test_evaluate_codes_with_the_prior_asked_for(tmp_path, folder):
    image = str(folder / "a.png")
    static = json.loads(CliRunner().invoke(main, ["evaluate", image, "--stages", "2", "--prior", "static", "--json"]).stdout)
    context = evaluate([image], stages=[2], prior="context")
    assert "static prior" in static["description"] and "context prior" in context["description"]
    assert static["per_image"][0]["bytes"] != context["per_image"][0]["bytes"]
    refused = CliRunner().invoke(main, ["evaluate", image, "--prior", "static", "--rdo", "1"])
    assert refused.exit_code == 1 and "rdo needs the context prior" in refused.output
