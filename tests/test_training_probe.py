"""The training probe's legs: consecutive legs of one run count steps and hours from the first."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from training_probe import chained


def leg(steps: list[int], hours_per_step: float) -> dict:
    return {
        "validation": [
            {"step": step, "hours": step * hours_per_step, "psnr": [20.0 + step / 1000], "usage": [1.0]} for step in steps
        ]
    }


def test_legs_continue_where_the_last_one_ended():
    legs = chained({"leg 1": leg([500, 1000], 1e-4), "leg 2": leg([500, 2000], 2e-4), "leg 3": leg([250], 1e-4)})
    assert [point["step"] for point in legs["leg 2"]["validation"]] == [1500, 3000]
    assert [point["step"] for point in legs["leg 3"]["validation"]] == [3250]
    assert legs["leg 3"]["starts_at"] == {"step": 3000, "hours": 0.1 + 0.4}
    assert abs(legs["leg 2"]["validation"][0]["hours"] - (0.1 + 0.1)) < 1e-12
    # The validation figures themselves are the legs' own.
    assert legs["leg 2"]["validation"][1]["psnr"] == [22.0]


def test_legs_are_taken_whole():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "training_probe.py"), "a=x", "--legs", "--from-step", "500", "--out", "y"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--legs takes every leg whole" in result.stderr
