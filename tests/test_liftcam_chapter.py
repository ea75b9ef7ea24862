"""The liftcam chapter: its parameters, its claims on synthetic results, its units on a tiny run, and the
cost counters' known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import LAYER, make_linear_tail_net

from camrepro import cache, methods, models
from camrepro.evidence import INCONCLUSIVE, NOT_TESTABLE, REPRODUCED
from camrepro.experiments import registry
from camrepro.experiments.chapter import Results
from camrepro.experiments.liftcam import claims, cost, params, tables


@pytest.fixture
def chapter():
    return registry.get("liftcam")


# ------------------------------------------------------------------------------------------------ parameters
def test_parameters_resolve_and_reject_bad_values(chapter):
    p = chapter.params()
    assert p["images"]["n"] == 16 and "lift-cam" in p["methods"]
    with pytest.raises(ValueError, match=r"unknown liftcam parameter\(s\) \['n_images'\].*known ones are"):
        chapter.params(overrides={"n_images": 4})
    with pytest.raises(ValueError, match="known ones are.*'permutations'"):
        chapter.params(overrides={"shap": {"orders": 4}})
    with pytest.raises(TypeError, match=r"liftcam.insertion_steps must be an int, got '8'"):
        chapter.params(overrides={"insertion_steps": "8"})
    with pytest.raises(ValueError, match=r"liftcam.images.n must be ≥ 1, got -2"):
        chapter.params(overrides={"images": {"n": -2}})
    with pytest.raises(ValueError, match="counts must be ints ≥ 0"):
        chapter.params(overrides={"method_images": {"score-cam": -1}})
    with pytest.raises(ValueError, match="multiple of 4"):
        chapter.params(overrides={"shap": {"permutations": 10}})
    with pytest.raises(ValueError, match="must not exceed images.n"):
        chapter.params(overrides={"images": {"n": 4}, "shap": {"images": 5}})
    with pytest.raises(ValueError, match="must list 'lift-cam'"):
        chapter.params(overrides={"methods": ["grad-cam"]})
    with pytest.raises(ValueError, match="unknown method"):
        chapter.params(overrides={"method_images": {"gradcam": 1}})
    with pytest.raises(ValueError, match="must be one of"):
        chapter.params(overrides={"layers": ["linear"]})


def test_profiles_hold_only_schema_keys(chapter):
    sections = [set(chapter.params(profile)) for profile in ("smoke", "book", "paper")]
    assert sections[0] == sections[1] == sections[2]
    assert chapter.params("book")["images"] == {"source": "ai-benchmark", "n": 16, "size": 224, "seed": 0,
                                                "root": None, "labels": None}


def test_vgg16_runs_its_last_layer_once(chapter, tmp_path, monkeypatch):
    # the units' keys hold their inputs' fingerprints, so the weight files must exist (torchvision's are
    # identified by their names)
    monkeypatch.setenv("CAMREPRO_WEIGHTS", str(tmp_path))
    for name in ("vgg16", "resnet50"):
        (tmp_path / models.MODELS[name].relative_path).touch()
    p = chapter.params(overrides={"models": ["vgg16", "resnet50"], "layers": ["last", "nonlinear"]})
    assert params.configurations(p) == [("vgg16", "last"), ("resnet50", "last"), ("resnet50", "nonlinear")]
    names = [u.name for u in chapter.units(p)]
    assert names[-2:] == ["timing-vgg16", "timing-resnet50"] and "maps-vgg16-nonlinear" not in names


# -------------------------------------------------------------------------------------- claims, synthetic
def _results(lift_gain: float, noise: float, n: int = 12) -> Results:
    """Synthetic unit results: one model, a linear and a non-linear layer, LIFT-CAM better by ``lift_gain``
    (on every measure's good side) with ``noise`` per photo."""
    rng = np.random.default_rng(0)
    images = [f"photo/{i}" for i in range(n)]
    agreement, faith, grid, shap_rows, shap_time, rounds = [], [], [], [], [], []
    for kind, linear in (("last", True), ("nonlinear", False)):
        base = {"model": "mobilenet_v2", "layer_kind": kind, "layer": kind, "tail_is_linear": linear}
        shap_rows += [{**base, "image": im} for im in images]
        for method in ("lift-cam", "lrp-cam", "grad-cam", "score-cam"):
            m = 4 if method == "score-cam" else n
            gain = lift_gain if method == "lift-cam" else 0.0
            e = rng.normal(0, noise, m)
            agreement.append(pd.DataFrame({**base, "method": method, "image": images[:m],
                                           "spearman": 0.5 + gain + e,
                                           "normalised_error": 0.5 - gain + e, "cosine": 0.5}))
            faith.append(pd.DataFrame({**base, "method": method, "image": images[:m],
                                       "AD": 30 - 10 * gain + e,
                                       "AI": 20 + 10 * gain + e, "AG": 10 + 10 * gain + e,
                                       "insertion": 0.5 + gain + e, "deletion": 0.3 - gain + e,
                                       "all_zero": False}))
            if method != "score-cam":
                grid.append(pd.DataFrame({**base, "method": method, "grid": np.repeat(np.arange(n), 4),
                                          "quadrant": np.tile(np.arange(4), n),
                                          "hit": 0.5 + gain + rng.normal(0, noise, 4 * n),
                                          "energy": 0.4 + gain + rng.normal(0, noise, 4 * n),
                                          "all_zero": False}))
        for i in range(n):
            lift = 0.1 * np.exp(rng.normal(0, noise))
            shap_time += [{**base, "round": i, "call": c, "seconds": s, "load": 0.0, "image": images[i]}
                          for c, s in (("forward", 0.08), ("lift-cam", lift),
                                       ("shap", lift * 200 ** lift_gain))]
            rounds += [{**base, "set": "fast", "round": i, "call": c, "seconds": s, "load": 0.0}
                       for c, s in (("forward", 0.08), ("lift-cam", lift), ("grad-cam", 0.1))]
        rounds += [{**base, "set": "slow", "round": r, "call": c, "seconds": s, "load": 0.0}
                   for r in range(3) for c, s in (("lift-cam", 0.1), ("score-cam", 0.1 * 100 ** lift_gain))]

    def result(**frames):
        return cache.Result(path=Path("."), tables={
            k: pd.concat(v, ignore_index=True) if isinstance(v[0], pd.DataFrame) else pd.DataFrame(v)
            for k, v in frames.items()})

    return Results({"maps-mobilenet_v2-x": result(faithfulness=faith, grid=grid),
                    "shap-mobilenet_v2-x": result(agreement=agreement, shap=shap_rows, shap_timing=shap_time),
                    "timing-mobilenet_v2": result(timing=rounds)})


def test_claims_are_decided_on_paired_photos():
    decided = {c.key: c for c in claims.claims(_results(lift_gain=1.0, noise=0.01), {})}
    assert set(decided) == {"liftcam-shap-accuracy", "liftcam-faithfulness-drop-gain",
                            "liftcam-faithfulness-insertion-deletion", "liftcam-faithfulness-grid",
                            "liftcam-speed"}
    for key in ("liftcam-shap-accuracy", "liftcam-faithfulness-drop-gain", "liftcam-faithfulness-grid",
                "liftcam-faithfulness-insertion-deletion", "liftcam-speed"):
        assert decided[key].verdict == REPRODUCED, (key, decided[key].ours())
    accuracy = decided["liftcam-shap-accuracy"]
    labels = [c.label for c in accuracy.conditions]
    # LRP-CAM equals LIFT-CAM by construction at a linear tail: compared at the non-linear tail only
    assert not any("last" in label and "LRP-CAM" in label for label in labels)
    assert any("nonlinear" in label and "LRP-CAM" in label for label in labels)
    # Score-CAM ran on 4 photos: compared on those only
    assert {c.n for c in accuracy.conditions if "Score-CAM" in c.label} == {4}
    assert {c.n for c in accuracy.conditions if "Grad-CAM" in c.label} == {12}
    grid = decided["liftcam-faithfulness-grid"]
    assert {c.n for c in grid.conditions} == {12}                 # units are grids, not grid maps
    speed = decided["liftcam-speed"].conditions
    assert not any("last" in c.label and "SHAP" in c.label for c in speed)
    assert {c.statistic for c in speed} == {"geometric mean ratio"}


def test_claims_without_a_difference_are_inconclusive():
    noisy = {c.key: c for c in claims.claims(_results(lift_gain=0.0, noise=0.5), {})}
    assert noisy["liftcam-shap-accuracy"].verdict == INCONCLUSIVE
    assert noisy["liftcam-faithfulness-insertion-deletion"].verdict == INCONCLUSIVE
    assert noisy["liftcam-shap-accuracy"].n == "4-12"          # Score-CAM on 4 photos, the others on 12


def test_a_chapter_with_nothing_measured_is_not_testable():
    empty = cache.Result(path=Path("."), tables={"grid": pd.DataFrame(
        columns=["model", "layer_kind", "method", "grid", "quadrant", "hit", "energy", "all_zero"]),
        "faithfulness": pd.DataFrame(columns=["model", "layer_kind", "tail_is_linear", "method", "image"])})
    claim = claims.faithfulness_claims(Results({"maps-m-k": empty,
                                                "shap-m-k": cache.Result(path=Path("."), tables={
                                                    "shap": pd.DataFrame(columns=["model", "layer_kind",
                                                                                  "tail_is_linear"])})}))[2]
    assert claim.verdict == NOT_TESTABLE


# ---------------------------------------------------------------------------------------- units, tiny run
def test_units_on_a_tiny_run(chapter, tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    p = chapter.params(overrides={
        "models": ["mobilenet_v2"], "methods": ["lift-cam", "lrp-cam", "grad-cam"],
        "images": {"n": 4, "size": 32}, "shap": {"images": 2, "permutations": 8}, "insertion_steps": 2,
        "grids": {"n": 1}, "timing": {"rounds": 2, "slow_rounds": 1}, "chunk": 4, "examples": 1})
    results = chapter.run(p)
    assert list(results) == [u.name for u in chapter.units(p)]
    quality = tables.shap_quality_summary(results).set_index("layer_kind")
    assert quality.loc["last", "tail_is_linear"] and not quality.loc["nonlinear", "tail_is_linear"]
    assert (quality.photos == 2).all() and (quality.lift_completeness_error < 1e-3).all()
    agree = tables.agreement(results)
    # with a linear tail LIFT-CAM's coefficients are the exact SHAP values (the sampler's too)
    exact = agree[(agree.layer_kind == "last") & (agree.method == "lift-cam")]
    assert (exact.normalised_error < 1e-4).all()
    faith = tables.faithfulness_summary(results)
    assert set(faith.method) == {"lift-cam", "lrp-cam", "grad-cam"} and (faith.photos == 4).all()
    assert (faith.grids == 1).all()
    assert len(tables.grid_units(results)) == 2 * 3                    # one grid, three methods, two layers
    speed = tables.timing_summary(results)
    assert {"fast", "shap"} <= set(speed.set)
    costs = tables.cost(results).set_index(["layer_kind", "method"])
    assert costs.loc[("last", "lift-cam"), "network_passes_per_image"] == 1
    coefficient_table = tables.coefficients(results, "mobilenet_v2", "nonlinear")
    assert {"shap", "shap_stderr", "lift-cam", "grad-cam"} <= set(coefficient_table.columns)
    assert tables.example_maps(results, "mobilenet_v2", "last")["lift-cam"].shape == (1, 32, 32)
    again = chapter.run(p)                                              # a rerun reads every unit from disk
    assert all(r.from_cache for r in again.values())
    decided = chapter.claims(p)
    assert {c.key for c in decided} >= {"liftcam-shap-accuracy", "liftcam-speed"}


# ------------------------------------------------------------------------------------- cost, known answers
def test_network_passes_and_flops_known_answers():
    net = make_linear_tail_net().eval()
    x = torch.rand(2, 3, 8, 8)
    targets = torch.tensor([0, 1])
    for name in ("lift-cam", "grad-cam"):
        method = methods.get(name)(net, LAYER)
        with cost.count_network_passes(net) as counted:
            method(x, targets)
        assert counted["rows"] == 2                                   # one network pass per image
    # forward: conv 48 outputs × 12 multiply-adds = 1152 FLOPs, linear 3 → 4: 24 FLOPs. Grad-CAM adds the
    # gradient through the linear layer to the pooled activations (24 FLOPs) and the weighted sum of the 3
    # maps of 4 × 4 (2 · 3 · 16 = 96 FLOPs): 1296 / 1176
    grad_cam = methods.get("grad-cam")(net, LAYER)
    assert cost.forward_equivalents(grad_cam, net, x[:1], targets[:1]) == pytest.approx(1296 / 1176)
