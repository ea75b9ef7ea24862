"""The A-FMI chapter package: parameters, the agreement and completeness helpers by hand, the tables, the
claims decided on small synthetic results, and the units on a tiny run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from camrepro.cache import Result
from camrepro.evidence import INCONCLUSIVE, REPRODUCED
from camrepro.experiments import registry
from camrepro.experiments.afmi import claims, tables
from camrepro.experiments.afmi.agreement import (
    SoftmaxOutput, completeness_rows, cross_reference_agreement, other_photo, pooled,
)
from camrepro.experiments.afmi.params import SCHEMA, layer_for, method_layers, method_options
from camrepro.methods.a_fmi import AFMI


def small_cnn() -> nn.Module:
    """A float64 CNN: two convolutions ('features', the second explained as 'features.1') then a linear
    tail (pool + fc)."""
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(3, 6, 3, padding=1),
                                             nn.Conv2d(6, 8, 3, stride=2, padding=1)))
    net.add_module("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)))
    return net.double().eval()


def images64(n: int, size: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def results_of(**units: dict[str, pd.DataFrame]) -> dict[str, Result]:
    return {name.replace("_", "-"): Result(path=None, tables=t) for name, t in units.items()}


# ------------------------------------------------------------------------------------------- parameters


def test_profiles_resolve_with_the_same_keys():
    chapter = registry.get("afmi")
    from camrepro.notebooks import load_profile

    sections = [load_profile(p)["afmi"] for p in ("smoke", "book", "paper")]
    assert all(set(s) == set(sections[0]) for s in sections)
    for profile in ("smoke", "book", "paper"):
        params = chapter.params(profile)
        assert params["layers"][0] in ("last", "nonlinear")
    assert chapter.params("book")["images"] == {"source": "ai-benchmark", "n": 16, "size": 224, "seed": 0,
                                               "root": None, "labels": None}


@pytest.mark.parametrize("change, error, match", [
    ({"n_images": 3}, ValueError,
     r"unknown afmi parameter\(s\) \['n_images'\]; the known ones are \[.*'images'"),
    ({"insensitivity": {"pairs": 2}}, ValueError, r"known ones are \['images', 'method_options', 'methods'"),
    ({"chunk": "8"}, TypeError, "afmi.chunk must be an int"),
    ({"chunk": 2.0}, TypeError, "afmi.chunk must be an int"),
    ({"grids": {"n": -1}}, ValueError, r"afmi.grids.n must be ≥ 1"),
    ({"faithfulness": {"insertion_steps": 0}}, ValueError, "insertion_steps must be ≥ 1"),
    ({"images": {"n": -2}}, ValueError, "afmi.images.n must be ≥ 1"),
    ({"references": {"names": ["zeros"]}}, ValueError, "at least 2 item"),
    ({"references": {"names": ["zeros", "sepia"]}}, ValueError, "must be one of"),
    ({"references": {"names": ["zeros", "zeros"]}}, ValueError, "lists an item twice"),
    ({"insensitivity": {"methods": ["deeplift"]}}, ValueError, "must include 'a-fmi'"),
    ({"insensitivity": {"methods": ["a-fmi", "grad-cam"]}}, ValueError, "must be one of"),
    ({"models": ["alexnet"]}, ValueError, "must be one of"),
    ({"layers": ["middle"]}, ValueError, "must be one of"),
    ({"layers": []}, ValueError, "at least 1 item"),
    ({"saturation": {"images": 99}}, ValueError, "cannot exceed pool"),
    ({"saturation": {"temperatures": [0]}}, ValueError, "must be ≥"),
    ({"insensitivity": {"topk_fraction": 1.5}}, ValueError, "must be ≤ 1"),
    ({"method_options": {"a-fmi": {"reference": "blur"}}}, ValueError, "the reference is set by the chapter"),
    ({"method_options": {"no-such-cam": {}}}, ValueError, "names no method 'no-such-cam'"),
])
def test_bad_parameters_are_refused_with_a_message(change, error, match):
    with pytest.raises(error, match=match):
        SCHEMA.resolve(change)


def test_layers_and_method_options():
    assert layer_for("mobilenet_v2", "last") == "features.18"
    assert layer_for("mobilenet_v2", "nonlinear") == "features.17"
    assert method_layers("a-fmi", ["last", "nonlinear"]) == ["last", "nonlinear"]
    assert method_layers("deeplift", ["last", "nonlinear"]) == ["input"]
    params = SCHEMA.resolve({"method_options": {"a-fmi": {"steps": 8}, "integrated-gradients": {"steps": 16}},
                             "insensitivity": {"method_options": {"integrated-gradients": {"steps": 4}}}})
    other = torch.zeros(1, 3, 4, 4)
    # the black reference is every reference method's default: no option, the other chapters' map key
    assert method_options("integrated-gradients", "zeros", params) == ({"steps": 16}, {"steps": 16})
    assert method_options("deeplift", "zeros", params) == ({}, {})
    constructor, key = method_options("a-fmi", "photo", params, other=other)
    assert constructor["reference"] is other and key["reference"] == "photo:skimage/coffee"
    assert constructor["steps"] == key["steps"] == 8
    assert method_options("a-fmi", "blur", params)[1] == {"steps": 8, "reference": "blur", "blur_sigma": 10.0}
    assert method_options("integrated-gradients", "mean", params, params["insensitivity"])[0] == {
        "steps": 4, "reference": "mean"}
    # LIFT-CAM's default is all-zero activations, not the black image: "zeros" is passed on
    assert method_options("lift-cam", "zeros", params)[0] == {"reference": "zeros"}
    assert method_options("lift-cam", None, params) == ({}, {})
    assert method_options("grad-cam", None, params) == ({}, {})


# ------------------------------------------------------------------------------ helpers, known answers


def test_cross_reference_agreement_by_hand():
    a = torch.tensor([[[0.0, 0.2], [0.5, 1.0]]])
    maps = {"a": a, "b": a.clone(), "c": 1.0 - a, "d": torch.full_like(a, 0.5)}
    table = cross_reference_agreement(maps, topk_fraction=0.25).set_index(["reference_a", "reference_b"])
    assert table.loc[("a", "b"), "spearman"] == pytest.approx(1.0)
    assert table.loc[("a", "b"), "topk_iou"] == pytest.approx(1.0)
    assert table.loc[("a", "c"), "spearman"] == pytest.approx(-1.0)
    assert table.loc[("a", "c"), "topk_iou"] == pytest.approx(0.0)   # top pixel (1, 1) against (0, 0)
    assert math.isnan(table.loc[("a", "d"), "spearman"]) and table.loc[("a", "d"), "constant"]
    assert not table.loc[("a", "b"), "constant"]
    assert len(table) == 6                                             # every unordered pair once
    with pytest.raises(ValueError, match="at least two references"):
        cross_reference_agreement({"a": a}, 0.1)
    # two maps that differ only inside each 2 × 2 cell disagree pixel by pixel but agree once pooled
    fine = torch.tensor([[[0.0, 0.1, 0.4, 0.5], [0.2, 0.3, 0.6, 0.7],
                          [0.8, 0.9, 0.2, 0.2], [1.0, 0.9, 0.2, 0.2]]])
    shuffled = fine.clone()
    shuffled[0, 0, 0], shuffled[0, 1, 1] = fine[0, 1, 1], fine[0, 0, 0]
    shuffled[0, 2, 0], shuffled[0, 3, 0] = fine[0, 3, 0], fine[0, 2, 0]
    row = cross_reference_agreement({"a": fine, "b": shuffled}, 0.25, pooled_size=2).iloc[0]
    assert row.spearman < 0.99
    assert row.spearman_pooled == pytest.approx(1.0) and row.topk_iou_pooled == pytest.approx(1.0)


def test_pooled_maps_average_each_cell():
    maps = torch.tensor([[[0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 0.5],
                          [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]]])
    assert torch.allclose(pooled(maps, 2), torch.tensor([[[0.5, 0.5], [0.0, 0.75]]]))


def test_completeness_rows_match_the_method():
    net = small_cnn()
    x = images64(3)
    targets = torch.tensor([0, 2, 4])
    afmi = AFMI(net, layer="features.1", reference="zeros", steps=1)
    result = afmi.attribute(x, targets)
    check = completeness_rows(net, "features.1", x, torch.zeros_like(x), targets, result.importance, chunk=2)
    assert check["sum_phi"].to_numpy() == pytest.approx(result.importance.sum(dim=1).numpy())
    assert check["score"].to_numpy() == pytest.approx(result.score.numpy())
    assert check["reference_score"].to_numpy() == pytest.approx(result.reference_score.numpy())
    assert (check["relative_gap"] < 1e-10).all()                       # a linear tail: exact with one step
    reference_acts = net.features(torch.zeros_like(x))
    ratio = (reference_acts.flatten(1).norm(dim=1) / net.features(x).flatten(1).norm(dim=1)).detach()
    assert check["reference_ratio"].to_numpy() == pytest.approx(ratio.numpy())


def test_softmax_output_and_afmi_of_a_probability_is_complete():
    net = small_cnn()
    x = images64(2)
    wrapped = SoftmaxOutput(net, 3.0)
    assert torch.allclose(wrapped(x), torch.softmax(3.0 * net(x), dim=1))
    result = AFMI(wrapped, layer="net.features.1", reference="blur", blur_sigma=2.0, steps=64).attribute(x)
    total = result.score - result.reference_score
    assert torch.allclose(result.score, wrapped(x).max(dim=1).values)
    assert float((result.completeness_gap.abs() / total.abs()).max()) < 1e-3
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            SoftmaxOutput(net, bad)


def test_other_photo_is_one_packaged_image():
    photo = other_photo("skimage/coffee", 64)
    assert photo.shape == (1, 3, 64, 64) and 0.0 <= float(photo.min()) and float(photo.max()) <= 1.0
    with pytest.raises(ValueError, match="is not one of the 'skimage' photos"):
        other_photo("skimage/not-a-photo", 64)


# ------------------------------------------------------------------------------------------------ tables


def _pairs(method: str, layer: str, values: dict[str, list[float]], images=("p0", "p1")) -> pd.DataFrame:
    """Pair rows of one method: three reference pairs per image, the same value on every measure."""
    rows = []
    for image, per_pair in zip(images, values.values()):
        for (a, b), v in zip([("x", "y"), ("x", "z"), ("y", "z")], per_pair):
            rows.append({"model": "m", "method": method, "layer": layer, "image": image, "reference_a": a,
                         "reference_b": b, "spearman": v, "topk_iou": 0.0 if math.isnan(v) else v,
                         "constant": math.isnan(v), "spearman_pooled": v,
                         "topk_iou_pooled": 0.0 if math.isnan(v) else v})
    return pd.DataFrame(rows)


def test_insensitivity_per_photo_counts_a_constant_pair_as_zero_and_pair_matrix_is_symmetric():
    pairs = _pairs("a-fmi", "last", {"p0": [0.9, 0.5, float("nan")], "p1": [0.7, 0.3, 0.6]})
    results = results_of(insensitivity_m={"pairs": pairs, "maps": pd.DataFrame(
        {"model": "m", "method": "a-fmi", "layer": "last", "reference": ["x", "y", "z"], "maps": 2,
         "all_zero": [0, 1, 0]})})
    photos = tables.insensitivity_per_photo(results).set_index("image")
    assert photos.loc["p0", "rank_correlation"] == pytest.approx(1.4 / 3)
    assert photos.loc["p1", "rank_correlation_pooled"] == pytest.approx(1.6 / 3)
    assert photos.loc["p0", "constant_pairs"] == 1 and photos.loc["p0", "pairs"] == 3
    summary = tables.insensitivity_summary(results).iloc[0]
    assert summary.rank_correlation == pytest.approx(3.0 / 6)
    assert summary.photos == 2 and summary.constant_pairs == 1 and summary.all_zero_maps == 1
    matrix = tables.pair_matrix(results, "m", "a-fmi", "last")
    assert list(matrix.index) == ["x", "y", "z"]
    assert matrix.loc["x", "y"] == pytest.approx(0.8) and matrix.loc["y", "x"] == pytest.approx(0.8)
    assert matrix.loc["y", "z"] == pytest.approx(0.3)   # (0 for the constant pair + 0.6) / 2
    assert matrix.loc["z", "z"] == 1.0


def test_faithfulness_and_grid_summaries_by_hand():
    faith = pd.DataFrame({"model": "m", "method": "a-fmi", "layer": "last", "image": ["a", "b"],
                          "p": [0.8, 0.5], "o": [0.4, 0.6], "insertion": [0.6, 0.8], "deletion": [0.2, 0.4],
                          "all_zero": [False, True]})
    grid = pd.DataFrame({"model": "m", "method": "a-fmi", "layer": "last", "grid": [0, 0, 0, 0, 1, 1, 1, 1],
                         "quadrant": [0, 1, 2, 3] * 2, "hit": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0],
                         "energy": [0.5, 0.1, 0.4, 0.6, 0.2, 0.2, 0.2, 0.2], "all_zero": False})
    row = tables.faithfulness_summary(results_of(faithfulness_m={"faithfulness": faith})).iloc[0]
    # AD = mean(0.4/0.8, 0) = 25 %, AI = 1 of 2 = 50 %, AG = mean(0, 0.1/0.5) = 10 %
    assert (row.AD, row.AI, row.AG) == (pytest.approx(25.0), pytest.approx(50.0), pytest.approx(10.0))
    assert row.insertion == pytest.approx(70.0) and row.deletion == pytest.approx(30.0)
    assert (row.photos, row.all_zero_maps, row.layer) == (2, 1, "last")
    results = results_of(grids_m={"grid": grid})
    per_grid = tables.grid_per_grid(results)
    assert per_grid.hit.tolist() == [0.75, 0.25]
    row = tables.grid_summary(results).iloc[0]
    assert row.hit == pytest.approx(50.0) and row.energy == pytest.approx(30.0) and row.grids == 2


def test_saturation_summary_by_hand():
    table = pd.DataFrame({"model": "m", "temperature": 4.0, "method": "grad-cam", "image": ["a", "b"],
                          "probability": [0.9, 1.0], "probability_is_one": [False, True],
                          "probability_change": [0.5, 0.7], "gradient": [1e-3, 0.0], "sum_phi": float("nan"),
                          "relative_gap": float("nan"),
                          "rank_correlation_with_logit_map": [0.8, float("nan")],
                          "deletion_auc": [0.2, 0.4], "all_zero": [False, True]})
    row = tables.saturation_summary(results_of(saturation_m={"saturation": table})).iloc[0]
    assert row.probability == pytest.approx(0.95) and row.probability_is_one == pytest.approx(0.5)
    assert row.gradient == pytest.approx(5e-4)
    assert row.rank_correlation_with_logit_map == pytest.approx(0.4)   # the constant map (NaN) counts as 0
    assert row.deletion_auc == pytest.approx(0.3) and row.photos == 2 and row.all_zero_maps == 1


# ------------------------------------------------------------------------------------------------ claims


def _synthetic(n: int, afmi_better: float, noise: float, seed: int = 0) -> dict[str, Result]:
    """Results of one model on ``n`` photos where A-FMI beats every other method by ``afmi_better`` on every
    measure (plus noise of size ``noise``)."""
    rng = np.random.default_rng(seed)
    images = [f"p{i}" for i in range(n)]

    def values(shift: float) -> np.ndarray:
        return 0.5 + shift + noise * rng.standard_normal(n)

    pair_rows, faith_rows, grid_rows, sat_rows = [], [], [], []
    for method, layer in [("a-fmi", "last"), ("integrated-gradients", "input"), ("deeplift", "input"),
                          ("lift-cam", "last")]:
        v = values(afmi_better if method == "a-fmi" else 0.0)
        for i, image in enumerate(images):
            pair_rows.append({"model": "m", "method": method, "layer": layer, "image": image,
                              "reference_a": "x", "reference_b": "y", "spearman": v[i], "topk_iou": v[i],
                              "constant": False,
                              "spearman_pooled": v[i], "topk_iou_pooled": v[i]})
    for method, layer in [("a-fmi", "last"), ("grad-cam", "last"), ("lift-cam", "last"),
                          ("integrated-gradients", "input"), ("deeplift", "input")]:
        better = afmi_better if method == "a-fmi" else 0.0
        faith_rows.append(pd.DataFrame({"model": "m", "method": method, "layer": layer, "image": images,
                                        "p": 0.5, "o": 0.5, "AG": 100 * values(better),
                                        "insertion": values(better), "deletion": values(-better),
                                        "all_zero": False}))
    for method in ("a-fmi", "grad-cam"):
        hit = np.clip(values(0.3 + (afmi_better if method == "a-fmi" else 0.0)), 0, 1)
        for g in range(n):
            for q in range(4):
                grid_rows.append({"model": "m", "method": method, "layer": "last", "grid": g, "quadrant": q,
                                  "hit": hit[g], "energy": hit[g], "all_zero": False})
        sat_rows.append(pd.DataFrame({"model": "m", "temperature": 16.0, "method": method, "image": images,
                                      "rank_correlation_with_logit_map": values(0.3 + (afmi_better if method
                                                                                       == "a-fmi" else 0.0)),
                                      "deletion_auc": values(-afmi_better if method == "a-fmi" else 0.0)}))
    return results_of(insensitivity_m={"pairs": pd.DataFrame(pair_rows)},
                      faithfulness_m={"faithfulness": pd.concat(faith_rows, ignore_index=True)},
                      grids_m={"grid": pd.DataFrame(grid_rows)},
                      saturation_m={"saturation": pd.concat(sat_rows, ignore_index=True)})


def test_claims_are_decided_on_clear_synthetic_results():
    params = SCHEMA.resolve({"layers": ["last"]})
    decided = claims.claims_from(_synthetic(16, afmi_better=0.4, noise=0.02), params)
    assert [c.key for c in decided] == ["afmi-reference-insensitivity", "afmi-faithfulness",
                                        "afmi-class-discrimination", "afmi-saturation"]
    assert all(c.verdict == REPRODUCED for c in decided), [(c.key, c.ours()) for c in decided]
    insensitivity = decided[0]
    assert len(insensitivity.conditions) == 6 and insensitivity.n == "16"   # 3 methods × 2 measures
    assert len(decided[1].conditions) == 12                                 # 4 methods × 3 measures
    deletion = [c for c in decided[1].conditions if "deletion" in c.label]
    assert all(c.rule.holds_when == "below" for c in deletion)
    from camrepro.report import validate_claims

    validate_claims(decided, "afmi")


def test_claims_are_inconclusive_on_noisy_small_results():
    params = SCHEMA.resolve({"layers": ["last"]})
    noisy = claims.claims_from(_synthetic(4, afmi_better=0.01, noise=0.3, seed=3), params)
    assert noisy[0].verdict == INCONCLUSIVE and noisy[0].n_to_decide is not None
    assert all(c.outcome == "undecided" for c in noisy[0].conditions)


def test_claims_read_the_first_layer_choice_only():
    results = _synthetic(8, afmi_better=0.4, noise=0.02)
    params = SCHEMA.resolve({"layers": ["nonlinear", "last"]})
    claim = claims.insensitivity_claim(tables.insensitivity_per_photo(results), "nonlinear")
    assert claim.verdict == "not testable here"        # no A-FMI map at 'nonlinear' in these results
    assert len(claims.claims_from(results, params)) == 4


# ------------------------------------------------------------------------------------------- a tiny run


@pytest.mark.slow
def test_units_on_a_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    chapter = registry.get("afmi")
    params = chapter.params(overrides={
        "models": ["mobilenet_v2"], "layers": ["last"], "images": {"n": 4, "size": 64},
        "method_options": {"a-fmi": {"steps": 2}},
        "references": {"names": ["zeros", "blur"]},
        "insensitivity": {"images": 2, "methods": ["a-fmi", "lift-cam"], "pooled_size": 2},
        "faithfulness": {"methods": ["a-fmi", "grad-cam"], "insertion_steps": 2},
        "grids": {"n": 1, "methods": ["a-fmi", "grad-cam"]},
        "saturation": {"pool": 4, "images": 2, "temperatures": [1, 8], "steps": 2, "deletion_steps": 2}})
    results = chapter.run(params)
    assert list(results) == ["insensitivity-mobilenet_v2", "faithfulness-mobilenet_v2", "grids-mobilenet_v2",
                             "saturation-mobilenet_v2"]
    summary = tables.insensitivity_summary(results)
    assert set(summary.method) == {"a-fmi", "lift-cam"} and (summary.photos == 2).all()
    assert (summary.pairs == 2).all()                                      # one pair of references per photo
    completeness = tables.completeness_summary(results)
    assert set(completeness.reference) == {"zeros", "blur"} and (completeness.relative_gap < 1e-4).all()
    faith = tables.faithfulness_per_photo(results)
    assert len(faith) == 8 and set(faith.columns) >= {"AG", "insertion", "deletion", "all_zero"}
    assert len(tables.grid_per_grid(results)) == 2
    saturation = tables.saturation_summary(results)
    assert len(saturation) == 4 and (saturation.photos == 2).all()
    decided = chapter.claims(params)
    assert [c.conditions[0].n for c in decided] == [2, 4, 1, 2]
    again = chapter.run(params)                                            # everything read from the cache
    assert again["faithfulness-mobilenet_v2"].path == results["faithfulness-mobilenet_v2"].path
