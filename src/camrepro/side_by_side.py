"""Independent CPU jobs side by side in worker processes, each on a share of the machine's threads.

The LFI-CAM chapter trains 21 small networks, one after the other. A training step of those networks uses two
threads poorly: on the 2-core machine one step takes 0.06 s on two threads and 0.09 s on one, so two trainings
on one thread each finish 1.3× sooner than the same two in a row on two threads. :func:`run` gives such jobs
to ``processes`` spawned workers with ``threads // processes`` torch threads each.

Each job is a picklable top-level function and its arguments; it must write its result where the caller reads
it (the content-hash cache: an interrupted pool loses at most the jobs it was running, and corrupts nothing,
since every entry is written atomically). The workers inherit the environment (``CAMREPRO_ROOT``,
``CAMREPRO_RESULTS``), not monkeypatched functions. Results in float32 may differ between one thread and two by
rounding (a convolution's backward sums in another order), as they differ between two machines.

``CAMREPRO_PROCESSES`` sets the number of workers (1: none, every job in this process); by default there is
one worker per torch thread, and none on an accelerator, under torchrun, or for fewer than two jobs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

import torch

from camrepro import distributed

ENVIRONMENT_VARIABLE = "CAMREPRO_PROCESSES"


def processes_for(jobs: int, device: str | torch.device = "cpu") -> int:
    """How many workers :func:`run` starts for ``jobs`` jobs on ``device`` (0: run them in this process)."""
    if jobs < 2 or torch.device(device).type != "cpu" or distributed.launched_by_torchrun():
        return 0
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if value:
        try:
            wanted = int(value)
        except ValueError:
            raise ValueError(f"{ENVIRONMENT_VARIABLE}={value!r} is not an integer (the number of worker "
                             "processes; 1 runs every job in this process)") from None
        if wanted < 1:
            raise ValueError(f"{ENVIRONMENT_VARIABLE} must be at least 1, got {wanted}")
    else:
        wanted = torch.get_num_threads()
    workers = min(wanted, jobs)
    return workers if workers >= 2 else 0


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["CAMREPRO_PROGRESS"] = "0"   # no worker draws a bar over another's


def run(function: Callable[..., object], jobs: Sequence[tuple], device: str | torch.device = "cpu") -> bool:
    """``function(*job)`` for every job in worker processes; False (nothing run) when :func:`processes_for`
    says to run them in this process. An exception in a job is raised here, after the pool has stopped."""
    workers = processes_for(len(jobs), device)
    if not workers:
        return False
    threads = max(1, torch.get_num_threads() // workers)
    # spawn, not fork: a forked copy of a process whose OpenMP threads have run can hang
    context = multiprocessing.get_context("spawn")
    with _main_not_imported(), ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                   initializer=_start_worker, initargs=(threads,)) as pool:
        for future in [pool.submit(function, *job) for job in jobs]:
            future.result()
    return True


@contextlib.contextmanager
def _main_not_imported() -> Iterator[None]:
    """Spawned workers that do not import the caller's ``__main__``.

    A spawned worker re-imports the script that started the parent, which in a script without an
    ``if __name__ == "__main__"`` guard starts the whole computation again; the jobs are package functions and
    need nothing from it. multiprocessing imports ``__main__`` by its ``__spec__`` or ``__file__``: both are
    hidden while the pool lives, and put back afterwards."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    hidden = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(hidden)
