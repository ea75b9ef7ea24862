"""DDP training under ``torchrun --nproc-per-node 2`` (gloo, CPU): resume after an interruption, test-set
evaluation counting each image once, agreement with one process, and the LFI-CAM chapter's training unit.

Tolerance against one process. Each global batch is the one-process batch, split between the ranks, and the
gradient is the batch's mean; what differs is batch normalisation, which normalises each rank's half batch
with that half's statistics. So the losses agree to 0.5 % (measured after two epochs: train loss 1.0e-3
relative, test loss 1.5e-4) and accuracies to a few images, not bitwise. A resumed DDP run repeats the uninterrupted DDP run bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from camrepro.experiments import registry

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env(results: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CAMREPRO_ROOT": str(REPO), "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "CAMREPRO_PROGRESS": "0"}
    if results is not None:
        env["CAMREPRO_RESULTS"] = str(results)
    return env


def _launcher(nproc: int = 2) -> list[str]:
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", "--nproc-per-node", str(nproc)]


def _worker(tmp_path: Path, name: str, *args: str, ranks: int | None = 2) -> dict:
    prefix = _launcher(ranks) if ranks else [sys.executable]
    run = subprocess.run([*prefix, str(REPO / "tests" / "ddp_worker.py"), str(tmp_path / name),
                          str(tmp_path / f"{name}.pt"), *args], env=_env(), cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / name / "rank0.pt"
    return torch.load(out, weights_only=False) if out.exists() else {}


def test_ddp_resumes_evaluates_each_test_image_once_and_agrees_with_one_process(tmp_path):
    full = _worker(tmp_path, "full", "2")
    assert full["world"] == 2 and full["resumed_from"] == 0
    assert _worker(tmp_path, "cut", "2", "1") == {}                 # interrupted after epoch 1
    assert (tmp_path / "cut.pt").is_file()                           # rank 0's checkpoint of epoch 1
    resumed = _worker(tmp_path, "cut", "2")
    assert resumed["resumed_from"] == 1
    for key, value in full["state"].items():
        assert torch.equal(resumed["state"][key], value), key
    for column in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
        assert resumed["history"][column] == full["history"][column]

    # evaluation split over the ranks and summed = one process evaluating all 33 test images
    assert full["shared"]["accuracy"] == full["alone"]["accuracy"]
    assert full["shared"]["loss"] == pytest.approx(full["alone"]["loss"], rel=1e-6)
    assert full["history"]["test_accuracy"][-1] == full["shared"]["accuracy"]

    one = _worker(tmp_path, "one", "2", ranks=None)
    assert one["world"] == 1
    for column in ("train_loss", "test_loss"):
        np.testing.assert_allclose(full["history"][column], one["history"][column], rtol=5e-3)
    assert full["history"]["lr"] == one["history"]["lr"]
    assert np.max(np.abs(np.subtract(full["history"]["train_accuracy"], one["history"]["train_accuracy"]))) <= 5 / 70
    assert np.max(np.abs(np.subtract(full["history"]["test_accuracy"], one["history"]["test_accuracy"]))) <= 3 / 33


def test_lficam_training_unit_under_torchrun(tmp_path, monkeypatch):
    """The chapter's training unit (every network, every seed) trained by 2 ranks with DDP, stored once by
    rank 0 under the one-process key; the rank-0 units that read the networks then find them in the cache."""
    overrides = {"seeds": [0], "stability": {"n_images": 8}, "evaluation": {"n_images": 8}}
    command = [*_launcher(), "-m", "camrepro.cli", "compute", "--chapter", "lficam", "--profile", "smoke",
               "--device", "cpu", "--set", json.dumps(overrides), "--units", "training", "quality"]
    run = subprocess.run(command, env=_env(tmp_path / "ddp"), cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    trained = sorted(p.name for p in (tmp_path / "ddp" / "lficam").glob("train-*"))
    # plain, ABN and LFI-CAM with seed 0, and ABN and LFI-CAM at the second stability setting
    assert len(trained) == 5 and not list((tmp_path / "ddp" / "lficam" / ".checkpoints").glob("*.pt"))

    chapter = registry.get("lficam")
    params = chapter.params("smoke", overrides)
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path / "ddp"))
    ddp = chapter.run(params, "cpu", only=["training"])["training"]
    assert ddp.from_cache and ddp.manifest["distributed"] == {"world": 2, "all_ranks": True}
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path / "one"))
    one = chapter.run(params, "cpu", only=["training"])["training"]
    assert ddp.path.name == one.path.name
    a, b = ddp.tables["accuracy"], one.tables["accuracy"]
    pd.testing.assert_frame_equal(a[["network", "seed", "epochs"]], b[["network", "seed", "epochs"]])
    # 64 test images, one epoch: accuracies within 4 images
    assert np.abs(a["test_accuracy"] - b["test_accuracy"]).max() <= 4 / 64
