"""``torchrun --nproc-per-node 2 -m camrepro.cli compute`` (gloo, CPU) against a one-process run: the opticam
and benchmark chapters' per-image units at the smoke profile (counts overridden down so that the test stays
short), a rerun after a lost shard, and the bad-launch errors.

Tolerance. The units are deterministic, but a sharded run explains and scores each photo in a smaller batch
than one process does, and on CPU a convolution's sums depend on the batch size in their last float32 bits;
a map that moves by a bit moves the score of the photo it masks. Measured (smoke profile, 2 ranks): maps
and probabilities to ~1e-6, AD (a percentage) by up to 6e-3 (relative 2e-4), Opti-CAM's AG by 3e-4. So
non-float columns must be equal and float columns agree to rtol 1e-3 / atol 1e-4; example maps (float16)
to one float16 step near 1 (1e-3). Row order, images and every count are exact.
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

from camrepro import cache
from camrepro.experiments import registry

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

OPTICAM = {"images": {"n": 3}, "baselines": ["fake-cam", "grad-cam", "score-cam"],
           "method_images": {"score-cam": 0}, "optimisation": {"images": 3, "iterations": 2}, "snapshots": [0, 2], "examples": 3}
BENCHMARK = {"images": {"n": 3}, "methods": ["grad-cam", "fake-cam", "integrated-gradients"],
             "randomisation": {"images": 3, "methods": ["grad-cam", "fake-cam"]},
             "grids": {"n": 0}}   # the grid unit is not run here (and a grid needs 4 photos)
CASES = {"opticam": (OPTICAM, ["faithfulness-mobilenet_v2"]),
         "benchmark": (BENCHMARK, ["maps-mobilenet_v2", "randomisation-mobilenet_v2"])}


def _torchrun(results: Path, chapter: str, overrides: dict, units: list[str], nproc: int = 2):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CAMREPRO_ROOT": str(REPO),
           "CAMREPRO_RESULTS": str(results), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
           "CAMREPRO_PROGRESS": "0"}
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    command = [*launcher, "--standalone", "--nproc-per-node", str(nproc), "-m", "camrepro.cli", "compute",
               "--chapter", chapter, "--profile", "smoke", "--device", "cpu", "--set", json.dumps(overrides),
               "--units", *units]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)


def _one_process(monkeypatch, results: Path, chapter: str, overrides: dict, units: list[str]):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(results))
    ch = registry.get(chapter)
    return ch.run(ch.params("smoke", overrides), "cpu", only=units)


def _assert_close(one: cache.Result, two: cache.Result):
    assert one.path.name == two.path.name   # the same cache key: the notebook renders from either
    assert one.tables.keys() == two.tables.keys() and one.arrays.keys() == two.arrays.keys()
    for name, a in one.tables.items():
        b = two.tables[name]
        assert list(a.columns) == list(b.columns) and len(a) == len(b), name
        for column in a.columns:
            if a[column].dtype.kind == "f":
                np.testing.assert_allclose(b[column].to_numpy(), a[column].to_numpy(), rtol=1e-3, atol=1e-4,
                                           err_msg=f"{name}.{column}")
            else:
                pd.testing.assert_series_equal(a[column], b[column], check_exact=True)
    for bundle, arrays in one.arrays.items():
        assert arrays.keys() == two.arrays[bundle].keys()
        for key, x in arrays.items():
            y = two.arrays[bundle][key]
            assert x.shape == y.shape and x.dtype == y.dtype, f"{bundle}/{key}"
            if x.dtype.kind in "fc":
                np.testing.assert_allclose(y, x, rtol=1e-3, atol=1e-3, err_msg=f"{bundle}/{key}")
            else:
                np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("chapter", sorted(CASES))
def test_two_ranks_merge_into_the_one_process_tables(tmp_path, monkeypatch, chapter):
    overrides, units = CASES[chapter]
    run = _torchrun(tmp_path / "two", chapter, overrides, units)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 ranks" in run.stdout
    one = _one_process(monkeypatch, tmp_path / "one", chapter, overrides, units)
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path / "two"))
    two = _one_process(monkeypatch, tmp_path / "two", chapter, overrides, units)   # reads the merged entries
    for unit in units:
        assert two[unit].from_cache
        _assert_close(one[unit], two[unit])
        record = two[unit].manifest["distributed"]
        assert record["world"] == 2 and [s["rank"] for s in record["shards"]] == [0, 1]
    if chapter == "benchmark":
        _rerun_after_a_lost_shard(tmp_path / "two", chapter, overrides, units[0], two[units[0]])


def _rerun_after_a_lost_shard(results: Path, chapter: str, overrides: dict, unit: str, merged: cache.Result):
    """A rank killed before its shard was complete leaves no shard (its temporary directory is never read):
    the rerun computes that shard only and merges into the same entry."""
    shards = results / chapter / ".shards" / merged.path.name / "world2"
    kept = (shards / "rank0" / "manifest.json").read_text()
    lost = shards / "rank1"
    os.replace(lost, shards / ".tmp-rank1-killed")
    import shutil

    shutil.rmtree(merged.path)
    run = _torchrun(results, chapter, overrides, [unit])
    assert run.returncode == 0, run.stderr[-3000:]
    assert (shards / "rank0" / "manifest.json").read_text() == kept   # not recomputed
    assert (lost / "manifest.json").is_file() and not (shards / ".tmp-rank1-killed").exists()
    again = cache.load(merged.path)
    for name, table in merged.tables.items():
        pd.testing.assert_frame_equal(again.tables[name], table, check_exact=True)


def test_bad_launches_get_clear_errors(tmp_path):
    run = _torchrun(tmp_path, "benchmark", {**BENCHMARK, "images": {"n": 1}}, ["maps-mobilenet_v2"])
    assert run.returncode != 0
    assert "benchmark/maps-mobilenet_v2 has 1 image(s) but the launch has 2 ranks" in run.stderr
