"""The benchmark chapter (camrepro.experiments.benchmark): parameters, claims on hand-made results, and its
units' tables on a tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camrepro import cache, evidence
from camrepro.experiments import registry
from camrepro.experiments.benchmark import claims as benchmark_claims
from camrepro.experiments.benchmark import tables
from camrepro.experiments.chapter import Results
from camrepro.experiments.kit.maps import computation_counts


@pytest.fixture(scope="module")
def chapter():
    return registry.get("benchmark")


# -- parameters ---------------------------------------------------------------------------------------------
def test_every_profile_resolves(chapter):
    for profile in ("smoke", "book", "paper"):
        params = chapter.params(profile)
        assert set(params) == set(chapter.schema.fields)


def test_unknown_key_names_the_known_ones(chapter):
    with pytest.raises(ValueError, match=r"unknown benchmark parameter\(s\) \['n_images'\].*'methods'"):
        chapter.params(overrides={"n_images": 4})
    with pytest.raises(ValueError, match=r"benchmark.timing.*'rounds'"):
        chapter.params(overrides={"timing": {"repeats": 3}})


@pytest.mark.parametrize("overrides, error, match", [
    ({"chunk": "8"}, TypeError, "benchmark.chunk must be an int"),
    ({"images": {"n": 2.5}}, TypeError, "benchmark.images.n must be an int"),
    ({"images": {"n": -1}}, ValueError, "benchmark.images.n must be ≥ 1"),
    ({"insertion_deletion": {"steps": 0}}, ValueError, "steps must be ≥ 1"),
    ({"method_images": {"score-cam": -4}}, ValueError, "count of 'score-cam' must be ≥ 0"),
    ({"method_images": {"score-cam": "4"}}, ValueError, "count of 'score-cam' must be an int"),
    ({"grids": {"method_grids": {"no-such-cam": 1}}}, ValueError, "unknown method 'no-such-cam'"),
    ({"methods": ["grad-cam", "grad-cam"]}, ValueError, "twice"),
    ({"methods": ["gradcam"]}, ValueError, "must be one of"),
    ({"method_options": {"integrated-gradients": 16}}, ValueError, "must be a mapping"),
    ({"methods": ["grad-cam"]}, ValueError, "not among the chapter's methods"),
    ({"models": []}, ValueError, "at least 1"),
])
def test_bad_parameters_are_clear_errors(chapter, overrides, error, match):
    with pytest.raises(error, match=match):
        chapter.params(overrides=overrides)


# -- claims on hand-made results ----------------------------------------------------------------------------
def results_of(faithfulness: pd.DataFrame, randomisation: pd.DataFrame | None = None) -> Results:
    units = {"maps-net": cache.Result(path=Path("."), tables={"faithfulness": faithfulness})}
    if randomisation is not None:
        units["randomisation-net"] = cache.Result(path=Path("."), tables={"randomisation": randomisation})
    return Results(units)


def faithfulness_rows(**methods: tuple[int, float, float, float]) -> pd.DataFrame:
    """method → (photos, AD mean, AG mean, spread); per-photo values scattered around the means."""
    rng = np.random.default_rng(0)
    rows = []
    for name, (n, ad, ag, spread) in methods.items():
        for i in range(n):
            rows.append({"model": "net", "method": name, "image": f"photo{i}", "p": 0.5, "o": 0.5,
                         "AD": ad + spread * rng.standard_normal(), "AI": 0.0,
                         "AG": ag + spread * rng.standard_normal(), "all_zero": False})
    return pd.DataFrame(rows)


def claims_on(faithfulness: pd.DataFrame, methods: list[str] | None = None) -> dict[str, evidence.Claim]:
    listed = methods or list(dict.fromkeys(faithfulness.method))
    found = benchmark_claims.claims_from(results_of(faithfulness), {"methods": listed})
    assert all(c.paper == "Opti-CAM" and c.chapter == "benchmark" for c in found)
    return {c.key.removeprefix("benchmark-fake-cam-"): c for c in found}


def test_fake_cam_claims_compare_methods_on_the_photos_both_explained():
    found = claims_on(faithfulness_rows(**{"fake-cam": (16, 0.5, 1.0, 0.2), "grad-cam": (16, 12.0, 18.0, 2.0),
                                           "score-cam": (4, 9.0, 25.0, 2.0)}))
    drop, gain = found["average-drop"], found["average-gain"]
    assert drop.verdict == gain.verdict == evidence.REPRODUCED
    # a method run on fewer photos is compared on those only, and n says so
    assert {c.label: c.n for c in drop.conditions} == {"net: fake-cam − grad-cam": 16,
                                                       "net: fake-cam − score-cam": 4}
    assert drop.n == "4-16"
    (score,) = [c for c in gain.conditions if c.label.endswith("score-cam")]
    assert list(score.units) == [f"photo{i}" for i in range(4)]


def test_a_real_map_with_a_lower_average_drop_fails_the_claim():
    found = claims_on(faithfulness_rows(**{"fake-cam": (16, 5.0, 1.0, 0.2),
                                           "grad-cam": (16, 0.2, 18.0, 0.1)}))
    assert found["average-drop"].verdict == evidence.NOT_REPRODUCED
    assert found["average-gain"].verdict == evidence.REPRODUCED


def test_close_methods_leave_the_claim_inconclusive_with_the_n_that_would_decide():
    found = claims_on(faithfulness_rows(**{"fake-cam": (8, 1.0, 1.0, 3.0), "grad-cam": (8, 1.5, 1.5, 3.0)}))
    drop = found["average-drop"]
    assert drop.verdict == evidence.INCONCLUSIVE
    assert drop.n_to_decide is None or drop.n_to_decide > 8


def test_average_gain_is_compared_with_the_cams_only():
    found = claims_on(faithfulness_rows(**{"fake-cam": (8, 0.5, 1.0, 0.2), "grad-cam": (8, 12.0, 18.0, 1.0),
                                           "integrated-gradients": (8, 95.0, 0.0, 0.1)}))
    assert [c.label for c in found["average-gain"].conditions] == ["net: fake-cam − grad-cam"]
    assert len(found["average-drop"].conditions) == 2


def test_without_fake_cam_the_claims_are_not_testable():
    found = claims_on(faithfulness_rows(**{"grad-cam": (8, 12.0, 18.0, 1.0)}))
    assert {c.verdict for c in found.values()} == {evidence.NOT_TESTABLE}
    assert "fake-cam" in found["average-drop"].untestable


def test_randomisation_check_passes_model_dependent_maps_and_fails_fake_cam():
    rho = {"cam": [0.1, -0.2, 0.05, 0.15, 0.0, np.nan], "fake-cam": [1.0] * 6}
    rows = pd.DataFrame([{"model": "net", "method": m, "image": f"photo{i}", "rank_correlation": r,
                          "all_zero_trained": False, "all_zero_random": bool(np.isnan(r))}
                         for m, values in rho.items() for i, r in enumerate(values)])
    summary = tables.randomisation_summary(results_of(faithfulness_rows(), rows)).set_index("method")
    assert summary.loc["cam", "below 0.5"] == evidence.HOLDS
    assert summary.loc["fake-cam", "below 0.5"] == evidence.FAILS
    # a photo whose map is all zero has no ranking: counted, and left out of n
    assert summary.loc["cam", "photos"] == 6 and summary.loc["cam", "n"] == 5
    assert summary.loc["cam", "all_zero_random"] == 1


# -- the units on a tiny run --------------------------------------------------------------------------------
TINY = {"models": ["mobilenet_v2"], "methods": ["cam", "grad-cam", "fake-cam"],
        "images": {"n": 5, "size": 64},
        "method_options": {}, "method_images": {"grad-cam": 3},
        "insertion_deletion": {"images": 2, "steps": 3}, "grids": {"n": 1, "method_grids": {"grad-cam": 0}},
        "randomisation": {"images": 2, "methods": ["cam", "fake-cam"], "method_images": {}, "seed": 0},
        "timing": {"methods": ["cam"], "batch": 2, "rounds": 2}, "examples": 2, "chunk": 2}


@pytest.fixture(scope="module")
def tiny_run(chapter, tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path_factory.mktemp("results")))
    # one code version for the whole module: an edit elsewhere in the package mid-run must not change the keys
    code = cache.source_hash()
    monkeypatch.setattr(cache, "source_hash", lambda *args, **kwargs: code)
    params = chapter.params(overrides=TINY)
    yield chapter, params, chapter.run(params)
    monkeypatch.undo()


def test_tiny_run_tables(tiny_run):
    chapter, params, results = tiny_run
    assert list(results) == ["maps-mobilenet_v2", "grid-mobilenet_v2", "randomisation-mobilenet_v2",
                             "timing-mobilenet_v2"]
    faith = tables.faithfulness_summary(results).set_index("method")
    assert faith.photos.to_dict() == {"cam": 5, "grad-cam": 3, "fake-cam": 5}
    assert (faith.all_zero_maps >= 0).all()
    # Fake-CAM masks one pixel: its masked probability hardly moves, so its Average Drop is near zero
    assert faith.loc["fake-cam", "AD"] < 5
    ins = tables.insertion_deletion_summary(results)
    assert ins.photos.tolist() == [2, 2, 2]
    assert ins[["insertion", "deletion"]].apply(lambda c: c.between(0, 100)).all().all()
    assert set(tables.curves(results)["mobilenet_v2"]) == {f"{m}|{mode}" for m in TINY["methods"]
                                                           for mode in ("insertion", "deletion")}
    grids = tables.grid_summary(results)
    assert grids.method.tolist() == ["cam", "fake-cam"] and (grids.grids == 1).all()
    randomisation = tables.randomisation_summary(results).set_index("method")
    # Fake-CAM's map is the same whatever the network: the check's negative control
    assert randomisation.loc["fake-cam", "mean ρ"] == pytest.approx(1.0)
    timing = tables.timing_summary(results)
    assert timing.batch.tolist() == [1, 2] and (timing.ratio > 0).all() and (timing.rounds == 2).all()
    images, maps, names = tables.examples(results, "mobilenet_v2")
    assert images.shape == (2, 3, 64, 64) and maps["cam"].shape == (2, 64, 64) and len(names) == 2
    found = chapter.claims(params)
    assert [c.key for c in found] == ["benchmark-fake-cam-average-drop", "benchmark-fake-cam-average-gain"]


def test_tiny_run_computes_each_map_once(tiny_run):
    chapter, params, _ = tiny_run
    again = chapter.run(params)
    assert all(r.from_cache for r in again.values())
    assert set(computation_counts().values()) == {1}
