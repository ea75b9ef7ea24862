"""Independent CPU jobs in worker processes (camrepro.side_by_side) and the LFI-CAM trainings that use them."""

from __future__ import annotations

import operator

import pytest
import torch

from camrepro import side_by_side


def test_how_many_workers(monkeypatch):
    monkeypatch.delenv(side_by_side.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert side_by_side.processes_for(1) == 0             # one job: nothing to run side by side
    assert side_by_side.processes_for(21) == 2            # one worker per thread
    assert side_by_side.processes_for(21, "meta") == 0    # an accelerator runs its jobs in this process
    monkeypatch.setenv(side_by_side.ENVIRONMENT_VARIABLE, "1")
    assert side_by_side.processes_for(21) == 0
    monkeypatch.setenv(side_by_side.ENVIRONMENT_VARIABLE, "3")
    assert side_by_side.processes_for(2) == 2
    for bad in ("two", "0"):
        monkeypatch.setenv(side_by_side.ENVIRONMENT_VARIABLE, bad)
        with pytest.raises(ValueError, match=side_by_side.ENVIRONMENT_VARIABLE):
            side_by_side.processes_for(4)
    monkeypatch.setenv(side_by_side.ENVIRONMENT_VARIABLE, "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert side_by_side.processes_for(4) == 0             # under torchrun the ranks share the work instead


@pytest.mark.slow
def test_a_failing_job_is_raised_here(monkeypatch):
    monkeypatch.setenv(side_by_side.ENVIRONMENT_VARIABLE, "2")
    with pytest.raises(ZeroDivisionError):
        side_by_side.run(operator.truediv, [(1, 1), (1, 0)])
    monkeypatch.setenv(side_by_side.ENVIRONMENT_VARIABLE, "1")
    assert side_by_side.run(operator.truediv, [(1, 1), (1, 0)]) is False   # nothing run: the caller runs them


@pytest.mark.slow
def test_lficam_trainings_run_in_workers_and_are_then_read_from_the_cache(tmp_path, monkeypatch):
    from camrepro.experiments.lficam import compute
    from camrepro.notebooks import load_profile

    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    monkeypatch.setenv(side_by_side.ENVIRONMENT_VARIABLE, "2")
    monkeypatch.setattr(compute, "MIN_STEPS_FOR_WORKERS", 0)
    p = compute.SCHEMA.resolve(load_profile("smoke")["lficam"])
    ctx = compute.Context(p)
    jobs = [("plain", 0, None), ("lficam", 0, None), ("lficam", 1, 1)]
    assert not any(ctx.is_trained(*job) for job in jobs)
    started, real = [], side_by_side.run

    def counting(function, args, device):
        started.append(len(args))
        return real(function, args, device)

    monkeypatch.setattr(side_by_side, "run", counting)
    compute._train_missing(ctx, jobs, "cpu")
    assert started == [3] and all(ctx.is_trained(*job) for job in jobs)
    runs = [ctx.trained(*job) for job in jobs]
    assert all(run.result.from_cache for run in runs)      # the parent trained nothing
    compute._train_missing(ctx, jobs, "cpu")
    assert started == [3, 0]                                 # nothing left to train: no worker is started
