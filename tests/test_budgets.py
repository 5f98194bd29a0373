"""The size budgets CI checks (`.ci/budgets.py`), on synthetic listings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BUDGETS_PATH = Path(__file__).resolve().parent.parent / ".ci" / "budgets.py"
spec = importlib.util.spec_from_file_location("budgets", BUDGETS_PATH)
budgets = importlib.util.module_from_spec(spec)
spec.loader.exec_module(budgets)

MIB = 1 << 20


def test_a_tree_within_budget_passes_and_one_resume_state_is_not_counted():
    listing = [("vqcodec/weights/model.safetensors", 16 * MIB), ("README.md", 10_000), ("runs/resume.pt", 90 * MIB)]
    assert budgets.tracked_problems(listing) == []


def test_an_over_budget_tree_fails_with_its_numbers(tmp_path, capsys):
    listing = [["vqcodec/weights/a.safetensors", 30 * MIB], ["checkpoints/old.safetensors", 29 * MIB]]
    (tmp_path / "listing.json").write_text(json.dumps(listing))
    assert budgets.main(["--listing", str(tmp_path / "listing.json")]) == 1
    error = capsys.readouterr().err
    assert "59.0 MiB" in error and "40 MiB" in error and "checkpoints/old.safetensors 29.0 MiB" in error


def test_a_second_resume_state_breaks_the_budget():
    problems = budgets.tracked_problems([("a.pt", 1), ("b.pt", 1)])
    assert len(problems) == 1 and "2 training states" in problems[0]


def test_the_wheel_must_hold_one_codec_and_one_prior_within_its_size():
    one_model = [
        "vqcodec/__init__.py",
        "vqcodec/weights/__init__.py",
        "vqcodec/weights/m.safetensors",
        "vqcodec/weights/m-prior.safetensors.xz",
    ]
    assert budgets.wheel_problems(30 * 10**6, one_model) == []
    two_codecs = one_model + ["vqcodec/weights/old.safetensors"]
    assert "2 codec and 1 prior" in budgets.wheel_problems(30 * 10**6, two_codecs)[0]
    assert "116.0 MB" in budgets.wheel_problems(116 * 10**6, one_model)[0]
