"""Running a command's jobs (one input → one output each) past failures: in this process or
in worker processes, behind one progress bar. Outputs are written atomically by the jobs, so
an interrupted batch leaves only complete files."""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

import click

# What a bad input, an unwritable output or a full memory raise; anything else is a bug and
# keeps its traceback.
JOB_ERRORS = (ValueError, OSError, RuntimeError, MemoryError)
STDIO = "-"  # stdin as an input, stdout as an output


def describe_failure(error: BaseException, source: str) -> str:
    """One line: the input's path once, then the reason."""
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror if error.filename in (None, source) else f"{error.strerror}: {error.filename}"
    else:
        reason = str(error) or type(error).__name__
    return reason if source in ("", STDIO) or source in reason else f"{source}: {reason}"


def _attempt(work: Callable[[str, str], None], source: str, target: str) -> str | None:
    """Run one job; the failure line, or None when it succeeded."""
    try:
        work(source, target)
    except JOB_ERRORS as error:
        return describe_failure(error, source)
    return None


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(jobs: list[tuple[str, str]], work: Callable[[str, str], None], label: str,
             processes: int = 1) -> list[str]:
    """Run `work(source, target)` for every job; returns the failure lines in job order.

    With `processes` > 1 the jobs run in that many spawned worker processes (so `work` must
    be picklable: a module-level function or a partial of one), each with an equal share
    of the CPU cores for torch.
    """
    failures: dict[int, str] = {}
    with click.progressbar(length=len(jobs), label=label, file=sys.stderr, hidden=len(jobs) == 1) as bar:
        if processes == 1 or len(jobs) == 1:
            for number, (source, target) in enumerate(jobs):
                if (line := _attempt(work, source, target)) is not None:
                    failures[number] = line
                bar.update(1)
            return [failures[number] for number in sorted(failures)]
        threads = max(1, (os.cpu_count() or 1) // processes)
        with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_limit_threads, initargs=(threads,)) as pool:
            pending = {pool.submit(_attempt, work, source, target): number for number, (source, target) in enumerate(jobs)}
            try:
                for future in as_completed(pending):
                    if (line := future.result()) is not None:
                        failures[pending[future]] = line
                    bar.update(1)
            except BaseException:  # Ctrl-C or a bug: start nothing new, let running jobs end
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return [failures[number] for number in sorted(failures)]
