"""Exact-once sharding of per-image units (camrepro.experiments.sharding) on a hand-made unit: every split of
its images merges into exactly the one-process outputs; bad shards and bad launches get clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from camrepro import cache
from camrepro.experiments import sharding
from camrepro.experiments.chapter import ALL_RANKS, RANK0, SHARDS, Unit
from camrepro.experiments.sharding import ShardError, Sharding

NAMES = [f"photo-{i:02d}" for i in range(7)]
PARAMS = {"n": len(NAMES), "device": "cpu"}


def _compute(device: str, positions=None, calls: list | None = None) -> dict[str, object]:
    """A unit shaped like the chapters': method A on every photo, B on the first 3, each in two spaces;
    per-image arrays for the first 4 photos; a table and a bundle that are the same whatever the shard."""
    if calls is not None:
        calls.append(positions)
    mine = list(range(len(NAMES))) if positions is None else list(positions)
    rows = []
    for method, cap in (("A", 7), ("B", 3)):
        for space in ("pixel", "normalized"):
            for p in mine:
                if p < cap:
                    rows.append({"method": method, "space": space, "image": NAMES[p],
                                 "score": np.sin(p + len(method) * 0.1) / 3.0, "flag": p % 2 == 0})
    first4 = [p for p in mine if p < 4]
    return {
        "scores": pd.DataFrame(rows, columns=["method", "space", "image", "score", "flag"]),
        "predictions": pd.DataFrame({"image": [NAMES[p] for p in mine], "cls": [p * 3 for p in mine]}),
        "setup": pd.DataFrame({"what": ["layer"], "value": ["features"]}),
        "examples": {"maps": np.stack([np.full((2, 2), p / 7.0, np.float32) for p in first4])
                     if first4 else np.zeros((0, 2, 2), np.float32),
                     "names": np.array([NAMES[p] for p in first4], dtype=str)},
        "curves": {"A": np.stack([np.arange(3.0) * p for p in mine])},
        "constants": {"steps": np.arange(3)},
    }


def _mean(outputs):
    return {**outputs, "curves": {k: v.mean(0) for k, v in outputs["curves"].items()}}


def _sharding(calls: list | None = None) -> Sharding:
    return Sharding(images=lambda: NAMES, compute=lambda device, positions: _compute(device, positions, calls),
                    groups={"scores": ("method", "space")}, per_image_arrays=("examples", "curves"),
                    finish=_mean)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], pd.DataFrame):
            pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
        else:
            assert a[name].keys() == b[name].keys()
            for k in a[name]:
                np.testing.assert_array_equal(a[name][k], b[name][k])


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_every_split_merges_into_the_one_process_outputs(tmp_path, world):
    split = _sharding()
    for rank in range(world):
        sharding.compute_shard("toy", "scores", PARAMS, split, "cpu", rank, world, root=tmp_path)
    merged, record = sharding.merge_shards("toy", "scores", PARAMS, split, world, root=tmp_path)
    _assert_same(merged, split.whole("cpu"))
    assert record["world"] == world and [s["rank"] for s in record["shards"]] == list(range(world))


def test_shards_are_keyed_by_unit_key_world_and_rank(tmp_path):
    path, computed = sharding.compute_shard("toy", "scores", PARAMS, _sharding(), "cpu", 1, 3, root=tmp_path)
    key, _ = cache.entry("toy", "scores", PARAMS, tmp_path)
    assert computed and path == tmp_path / "toy" / ".shards" / f"scores-{key}" / "world3" / "rank1"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["positions"] == [1, 4] and manifest["images"] == [NAMES[1], NAMES[4]]


def test_rerun_after_a_killed_rank_computes_only_the_missing_shard(tmp_path):
    calls: list = []
    split = _sharding(calls)
    sharding.compute_shard("toy", "scores", PARAMS, split, "cpu", 0, 2, root=tmp_path)
    # what a rank killed while writing leaves: a temporary directory, never read as a shard
    key, _ = cache.entry("toy", "scores", PARAMS, tmp_path)
    parent = sharding.shard_dir("toy", "scores", key, 2, 1, tmp_path).parent
    (parent / ".tmp-rank1-x").mkdir()
    (parent / ".tmp-rank1-x" / "tables.pkl").write_bytes(b"half written")
    with pytest.raises(ShardError, match=r"rank\(s\) \[1\] of 2 are missing"):
        sharding.merge_shards("toy", "scores", PARAMS, split, 2, root=tmp_path)
    calls.clear()
    _, again = sharding.compute_shard("toy", "scores", PARAMS, split, "cpu", 0, 2, root=tmp_path)
    _, computed = sharding.compute_shard("toy", "scores", PARAMS, split, "cpu", 1, 2, root=tmp_path)
    assert (again, computed) == (False, True) and calls == [[1, 3, 5]]
    assert not (parent / ".tmp-rank1-x").exists()
    merged, _ = sharding.merge_shards("toy", "scores", PARAMS, split, 2, root=tmp_path)
    _assert_same(merged, split.whole("cpu"))


def test_a_world_larger_than_the_images_is_refused(tmp_path):
    with pytest.raises(ShardError, match=r"toy/scores has 7 image\(s\) but the launch has 8 ranks"):
        sharding.compute_shard("toy", "scores", PARAMS, _sharding(), "cpu", 0, 8, root=tmp_path)


def test_a_shard_directory_from_another_parameter_set_is_refused(tmp_path):
    path, _ = sharding.compute_shard("toy", "scores", PARAMS, _sharding(), "cpu", 0, 2, root=tmp_path)
    other = Sharding(images=lambda: [n.upper() for n in NAMES], compute=_sharding().compute)
    with pytest.raises(ShardError, match="another parameter set .*other images than this rank's"):
        sharding.compute_shard("toy", "scores", PARAMS, other, "cpu", 0, 2, root=tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "key": "0123456789abcdef"}))
    with pytest.raises(ShardError, match=r"another parameter set \(cache key '0123456789abcdef'"):
        sharding.compute_shard("toy", "scores", PARAMS, _sharding(), "cpu", 0, 2, root=tmp_path)


def test_merge_checks_every_image_once():
    split = _sharding()
    shards = [_compute("cpu", [0, 2, 4, 6]), _compute("cpu", [1, 3, 5])]
    with pytest.raises(ShardError, match=r"exactly once \(twice: \['photo-02'\], missing: \['photo-05'\]"):
        sharding.merge_outputs(split, shards, [[0, 2, 4, 6], [1, 2, 3]], NAMES)
    shards[1]["predictions"] = shards[1]["predictions"].assign(image=NAMES[0])
    with pytest.raises(ShardError, match="rows for images outside its shard"):
        sharding.merge_outputs(split, shards, [[0, 2, 4, 6], [1, 3, 5]], NAMES)
    twice = _compute("cpu", [1, 3, 5])
    twice["predictions"] = pd.concat([twice["predictions"]] * 2)
    with pytest.raises(ShardError, match="appears twice in one group"):
        sharding.merge_outputs(split, [_compute("cpu", [0, 2, 4, 6]), twice], [[0, 2, 4, 6], [1, 3, 5]], NAMES)
    drifting = _compute("cpu", [1, 3, 5])
    drifting["setup"] = drifting["setup"].assign(value="other")
    with pytest.raises(ShardError, match="'setup' has no 'image' column and differs between shards"):
        sharding.merge_outputs(split, [_compute("cpu", [0, 2, 4, 6]), drifting], [[0, 2, 4, 6], [1, 3, 5]],
                               NAMES)


def test_units_say_how_they_run_under_torchrun():
    split = _sharding()
    assert Unit("u", {}, split.whole, sharding=split).under_torchrun == SHARDS
    assert Unit("u", {}, split.whole).under_torchrun == RANK0
    assert Unit("u", {}, split.whole, under_torchrun=ALL_RANKS).under_torchrun == ALL_RANKS
    with pytest.raises(ValueError, match="under_torchrun must be"):
        Unit("u", {}, split.whole, under_torchrun="shards")
