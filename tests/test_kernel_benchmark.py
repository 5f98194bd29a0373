"""The kernel benchmark's choice of cases: the goal case must run on an 80 GB card, and a
case that cannot fit is skipped with the reason, not left to fail mid-run."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from kernel import GOAL, skip_reason

GIB = 2**30
GOAL_CASE = (GOAL["N"], GOAL["K"], GOAL["D"])


def test_goal_case_fits_the_free_memory_of_an_80_gb_card():
    # An H100 80GB has 79.6 GiB; about 78 is free once CUDA and Triton have started.
    assert skip_reason(*GOAL_CASE, max_matrix_gb=None, free_bytes=78 * GIB) is None


def test_goal_case_is_skipped_where_its_64_gib_matrix_cannot_fit():
    reason = skip_reason(*GOAL_CASE, max_matrix_gb=None, free_bytes=64 * GIB)
    assert reason is not None and "GiB free on the device" in reason


def test_a_given_matrix_limit_decides_alone():
    assert skip_reason(*GOAL_CASE, max_matrix_gb=2.0, free_bytes=None) == "N×K float32 matrix > 2.0 GB"
    assert skip_reason(2**14, 1024, 32, max_matrix_gb=2.0, free_bytes=None) is None
