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


def _attempt(work: Callable[[str, str], str | None], source: str, target: str) -> tuple[str | None, str | None]:
    """Run one job: (its result line, if it gives one; None) when it succeeds, (None, the
    failure line) when it fails."""
    try:
        return work(source, target), None
    except JOB_ERRORS as error:
        return None, describe_failure(error, source)


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(
    jobs: list[tuple[str, str]],
    work: Callable[[str, str], str | None],
    label: str,
    processes: int = 1,
    threads: int | None = None,
    progress: bool = True,
) -> tuple[list[str], list[str]]:
    """Run `work(source, target)` for every job; returns (result lines, failure lines), each
    in job order. `work` may return a line that reports its result (or None).

    With `processes` > 1 the jobs run in that many spawned worker processes (so `work` must
    be picklable: a module-level function or a partial of one), each with `threads` torch
    threads, by default an equal share of the CPU cores; in this process `threads`, when
    given, sets torch's thread count. `progress` shows a bar on stderr for more than one job.
    """
    outcomes: dict[int, tuple[str | None, str | None]] = {}
    with click.progressbar(length=len(jobs), label=label, file=sys.stderr, hidden=len(jobs) == 1 or not progress) as bar:
        if processes == 1 or len(jobs) == 1:
            if threads is not None:
                _limit_threads(threads)
            for number, (source, target) in enumerate(jobs):
                outcomes[number] = _attempt(work, source, target)
                bar.update(1)
        else:
            threads = threads or max(1, (os.cpu_count() or 1) // processes)
            with ProcessPoolExecutor(
                max_workers=min(processes, len(jobs)),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_threads,
                initargs=(threads,),
            ) as pool:
                pending = {pool.submit(_attempt, work, source, target): number for number, (source, target) in enumerate(jobs)}
                try:
                    for future in as_completed(pending):
                        outcomes[pending[future]] = future.result()
                        bar.update(1)
                except BaseException:  # Ctrl-C or a bug: start nothing new, let running jobs end
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    ordered = [outcomes[number] for number in sorted(outcomes)]
    return [line for line, _ in ordered if line is not None], [line for _, line in ordered if line is not None]
