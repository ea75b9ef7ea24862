"""The opticam chapter: parameters, tables and claims on hand-made per-photo results, and a tiny real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from camrepro.cache import Result
from camrepro.evidence import INCONCLUSIVE, NOT_TESTABLE, REPRODUCED
from camrepro.experiments import registry
from camrepro.experiments.chapter import Results
from camrepro.experiments.kit.metric_tables import drop_increase_gain_per_image
from camrepro.experiments.opticam import claims as oc_claims
from camrepro.experiments.opticam import tables
from camrepro.experiments.opticam.params import SCHEMA, opticam_options

CHAPTER = registry.get("opticam")

# ---------------------------------------------------------------------------------------------- parameters


def test_defaults_and_profiles_are_valid():
    p = CHAPTER.params(None, {"optimisation": {"images": 3}, "images": {"n": 5}})
    assert p["optimisation"] == {"images": 3, "iterations": 100, "lr": 0.1}
    assert p["images"]["n"] == 5 and p["images"]["source"] == "ai-benchmark"
    for profile in ("smoke", "book", "paper"):
        q = CHAPTER.params(profile)
        assert max(q["snapshots"]) <= q["optimisation"]["iterations"]
    book = CHAPTER.params("book")
    assert book["images"] == {"source": "ai-benchmark", "n": 16, "size": 224, "seed": 0, "root": None,
                              "labels": None}
    assert book["optimisation"] == {"images": 16, "iterations": 100, "lr": 0.1}
    # every baseline (Score-CAM too) and the ablation on all the chapter's photos: the methods of one table are
    # scored on the same images
    assert book["method_images"] == {} and book["ablation"]["images"] == book["optimisation"]["images"]
    assert CHAPTER.params("paper")["targets"] == "label"


def test_profiles_share_one_key_set():
    import yaml

    root = Path(__file__).resolve().parents[1] / "notebooks" / "params"
    keys = [set(yaml.safe_load((root / f"{p}.yaml").read_text())["opticam"]) for p in ("smoke", "book", "paper")]
    assert keys[0] == keys[1] == keys[2] <= set(SCHEMA.fields)


@pytest.mark.parametrize("params,error,message", [
    ({"itertions": 5}, ValueError,
     r"unknown opticam parameter\(s\) \['itertions'\]; the known ones are .*'models'"),
    ({"optimisation": {"steps": 3}}, ValueError, r"unknown opticam.optimisation parameter\(s\) \['steps'\]"),
    ({"optimisation": {"iterations": "100"}}, TypeError, r"opticam.optimisation.iterations must be an int"),
    ({"optimisation": {"images": -1}}, ValueError, r"opticam.optimisation.images must be ≥ 1"),
    ({"ablation": {"images": -2}}, ValueError, r"opticam.ablation.images must be ≥ 0"),
    ({"insertion_deletion": {"steps": 0}}, ValueError, r"insertion_deletion.steps must be ≥ 1"),
    ({"timing": {"rounds": True}}, TypeError, r"timing.rounds must be an int"),
    ({"models": ["resnet18"]}, ValueError, r"opticam.models\[0\] must be one of"),
    ({"optimisation": 5}, TypeError, "must be a mapping"),
    ({"baselines": ["grad-cam", "opti-cam"]}, ValueError, "must not list 'opti-cam'"),
    ({"baselines": ["gradcam"]}, ValueError, r"unknown method\(s\) \['gradcam'\]"),
    ({"method_images": {"score-cam": -1}}, ValueError, "image counts must be ints ≥ 0"),
    ({"method_options": {"scorecam": {}}}, ValueError, r"unknown method\(s\) \['scorecam'\]"),
    ({"snapshots": [0, 150]}, ValueError, r"snapshots \[150\] are beyond optimisation.iterations"),
    ({"ablation": {"iterations": 200}}, ValueError, "ablation.iterations"),
    ({"targets": "label"}, ValueError, "needs labelled images"),
    ({"layers": {"alexnet": "x"}}, ValueError, r"unknown model\(s\) \['alexnet'\]"),
])
def test_bad_parameters_are_named(params, error, message):
    with pytest.raises(error, match=message):
        CHAPTER.params(None, params)


def test_opticam_options_leave_out_the_defaults():
    p = CHAPTER.params(None)
    assert opticam_options(p) == {}                       # the paper's defaults: one map-store key everywhere
    assert opticam_options(p, space="normalized") == {"space": "normalized"}
    assert opticam_options(CHAPTER.params(None, {"optimisation": {"iterations": 4}, "snapshots": [4],
                                                "ablation": {"iterations": 4}})) == {"iterations": 4}


# -------------------------------------------------------------------------------- hand-made per-photo results

def _rows(method: str, model: str, names: list[str], p: np.ndarray, o: np.ndarray, **extra) -> pd.DataFrame:
    table = drop_increase_gain_per_image(p, o)
    table.insert(0, "o", o)
    table.insert(0, "p", p)
    table.insert(0, "image", names)
    return table.assign(method=method, model=model, **extra)


def synthetic_results(n: int, clear: bool, seed: int = 0) -> Results:
    """One model, ``n`` photos. ``clear``: Opti-CAM gains on every photo, the baseline drops, Fake-CAM nudges
    p by 1e-5 (up on even photos); otherwise Opti-CAM and the baselines alternate gains and drops."""
    rng = np.random.default_rng(seed)
    names = [f"photo-{i}" for i in range(n)]
    p = rng.uniform(0.3, 0.7, n)
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    if clear:
        o = {"fake-cam": p + 1e-5 * sign, "grad-cam": p * rng.uniform(0.3, 0.9, n),
             "score-cam": p * rng.uniform(0.5, 0.9, n), "opti-cam": p + (1 - p) * rng.uniform(0.3, 0.9, n)}
    else:
        # each method gains on the photos where the other loses: paired differences of both signs
        o = {"fake-cam": p + 1e-5 * sign, "grad-cam": p - 0.1 * sign, "score-cam": p - 0.1 * sign,
             "opti-cam": p + 0.1 * sign}
    scores = []
    for method, values in o.items():
        k = 2 if method == "score-cam" else n          # Score-CAM on the first photos only
        for space in ("pixel", "normalized"):
            shift = 0.0 if space == "pixel" else -0.02
            scores.append(_rows(method, "mobilenet_v2", names[:k], p[:k], np.clip(values[:k] + shift, 0, 1),
                                space=space))
    scores = pd.concat(scores, ignore_index=True)
    zeros = scores[scores.space == "pixel"][["method", "image"]].assign(all_zero=False, model="mobilenet_v2")
    auc = pd.DataFrame({"image": names * 2, "method": ["grad-cam"] * n + ["opti-cam"] * n,
                        "insertion": np.r_[np.full(n, 0.6), np.full(n, 0.5) + (0 if clear else 0.1)
                                           + rng.normal(0, 0.01 if clear else 0.1, n)],
                        "deletion": np.r_[np.full(n, 0.1), np.full(n, 0.2) + rng.normal(0, 0.01, n)],
                        "model": "mobilenet_v2"})
    final = o["opti-cam"]
    iterations = pd.concat([_rows("opti-cam", "mobilenet_v2", names, p, p + (final - p) * t / 100, space="pixel",
                                  iteration=t) for t in (0, 50, 100)], ignore_index=True)
    faith = Result(path=Path("."), tables={"scores": scores, "all_zero": zeros, "insertion_deletion": auc,
                                           "iterations": iterations},
                   arrays={"trajectories": {"objective": np.tile(np.arange(101.0), (n, 1)),
                                            "images": np.array(names)},
                           "examples": {"images": np.zeros((1, 3, 4, 4), np.float16)}})
    ablation = []
    for objective, normalization, gain in [("mask", "range", 0.8), ("mask", "max", 0.8), ("mask", "sigmoid", 0.1),
                                           ("diff", "range", 0.2), ("diff", "max", 0.2), ("diff", "sigmoid", 0.05)]:
        g = gain if clear else 0.3 + 0.2 * sign * (1 if objective == "mask" else -1)
        ablation.append(_rows("opti-cam", "mobilenet_v2", names, p, np.clip(p + (1 - p) * g, 0, 1),
                              objective=objective, normalization=normalization))
    protocol = pd.concat([_rows("opti-cam", "mobilenet_v2", names[:2], p[:2], np.clip(final[:2] - 0.1, 0, 1),
                                space=space, optimised_in="normalized") for space in ("pixel", "normalized")])
    times = pd.DataFrame([{"round": r, "call": c, "seconds": s, "load": 1.0, "model": "mobilenet_v2"}
                          for r in range(3) for c, s in (("opti-cam", 10.0 + r), ("score-cam", 35.0 - r),
                                                         ("forward", 0.03))])
    return Results({"faithfulness-mobilenet_v2": faith,
                    "ablation": Result(path=Path("."), tables={"scores": pd.concat(ablation, ignore_index=True)}),
                    "protocol": Result(path=Path("."), tables={"scores": protocol}),
                    "timing": Result(path=Path("."), tables={"times": times})})


PARAMS = CHAPTER.params(None, {"models": ["mobilenet_v2"], "snapshots": [0, 50, 100]})


def test_summaries_by_hand():
    results = synthetic_results(4, clear=True)
    summary = tables.faithfulness_summary(results).set_index("method")
    s = tables.scores(results)
    grad = s[s.method == "grad-cam"]
    assert summary.loc["grad-cam", "AD"] == pytest.approx(100 * np.mean((grad.p - grad.o) / grad.p))
    assert summary.loc["grad-cam", "AI"] == 0 and summary.loc["opti-cam", "AI"] == 100
    assert summary.loc["fake-cam", "AI"] == 50                   # p nudged up on 2 of the 4 photos
    assert summary.loc["score-cam", "images"] == 2 and summary.loc["grad-cam", "all-zero maps"] == 0
    comparison = tables.comparison(results).set_index("method")
    assert comparison.loc["opti-cam", "insertion"] == pytest.approx(50.0, abs=2)
    assert comparison.loc["grad-cam", "deletion"] == pytest.approx(10.0)
    ab = tables.ablation_summary(results).set_index(["objective", "normalization"])
    assert ab.AG["mask", "range"] == pytest.approx(80.0) and ab.AG["diff", "sigmoid"] == pytest.approx(5.0)
    assert ab["AG published"]["mask", "range"] == 66.3          # Table 6 quoted beside ours
    curve = tables.iteration_curve(results).set_index("iteration")
    assert curve.AG[0] == pytest.approx(0.0) and curve.AG[100] > curve.AG[50] > 0
    assert tables.round_ratios(results).ratio.tolist() == pytest.approx([10 / 35, 11 / 34, 12 / 33])
    proto = tables.protocol_summary(results)
    assert set(proto.optimised_in) == {"", "pixel", "normalized"} and proto.images.max() == 2


def test_claims_decided_on_clear_evidence():
    decided = {c.key: c for c in oc_claims.claims(synthetic_results(16, clear=True), PARAMS)}
    assert list(decided) == ["fake-ad", "fake-ai", "fake-ag", "opti-ag", "opti-ad-ai", "insertion-deletion",
                             "objective", "sigmoid", "iterations", "protocol", "speed"]
    for key in ("fake-ad", "opti-ag", "opti-ad-ai", "insertion-deletion", "objective", "sigmoid", "iterations",
                "speed"):
        assert decided[key].verdict == REPRODUCED, (key, decided[key].ours())
    # Score-CAM ran on 2 of the 16 photos: compared on those only
    ns = {d.label: d.n for d in decided["opti-ag"].conditions}
    assert ns == {"MobileNetV2, AG: Opti-CAM vs Grad-CAM": 16, "MobileNetV2, AG: Opti-CAM vs Score-CAM": 2}
    # the baselines here never gain (AG 0) while Fake-CAM's nudges gain ~1e-5 %: decided against the claim
    assert decided["fake-ag"].verdict == "not reproduced"
    speed = decided["speed"].conditions[0]
    assert speed.statistic == "geometric mean ratio" and speed.interval.high < 1
    assert decided["fake-ad"].published.startswith("Fake-CAM AD 0.8")


def test_claims_inconclusive_on_noise():
    noisy = {c.key: c for c in oc_claims.claims(synthetic_results(4, clear=False, seed=1), PARAMS)}
    assert noisy["opti-ag"].verdict == INCONCLUSIVE
    assert noisy["objective"].verdict == INCONCLUSIVE
    assert noisy["opti-ag"].n_to_decide is None or noisy["opti-ag"].n_to_decide > 4


def test_claims_without_data_are_not_testable():
    results = synthetic_results(4, clear=True)
    empty = Results(dict(results) | {
        "timing": Result(path=Path("."), tables={"times": pd.DataFrame(columns=["round", "call", "seconds"])}),
        "ablation": Result(path=Path("."), tables={"scores": results["ablation"]["scores"].iloc[:0]})})
    verdicts = {c.key: c for c in oc_claims.claims(empty, PARAMS)}
    assert verdicts["speed"].verdict == NOT_TESTABLE and "Score-CAM" in verdicts["speed"].untestable
    assert verdicts["objective"].verdict == NOT_TESTABLE


# ------------------------------------------------------------------------------------------------ real runs

def test_recording_opticam_keeps_the_maps_and_records_snapshots():
    from camrepro.experiments.opticam.compute import RecordingOptiCAM
    from camrepro.methods.opti_cam import OptiCAM

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(2, 3, 8, 8)
    plain = OptiCAM(net, "1", iterations=3)(x, [0, 1])
    cam = RecordingOptiCAM(net, "1", iterations=3, snapshots=[0, 3])
    assert torch.allclose(cam(x, [0, 1]), plain)
    assert len(cam.records) == 2
    record = next(iter(cam.records.values()))
    assert set(record["snapshots"]) == {0, 3} and record["objective"].shape == (4,)


@pytest.mark.slow
def test_tiny_run_tables_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    params = CHAPTER.params(None, {
        "models": ["mobilenet_v2"], "images": {"n": 2, "size": 64}, "baselines": ["fake-cam", "grad-cam"],
        "method_images": {}, "optimisation": {"images": 2, "iterations": 2}, "snapshots": [0, 1, 2],
        "insertion_deletion": {"images": 2, "steps": 2}, "ablation": {"images": 2, "iterations": 1},
        "protocol": {"images": 1}, "timing": {"rounds": 0}, "examples": 1, "batch_size": 2})
    results = CHAPTER.run(params)
    assert list(results) == ["faithfulness-mobilenet_v2", "ablation", "protocol", "timing"]
    summary = tables.faithfulness_summary(results)
    assert set(summary.method) == {"fake-cam", "grad-cam", "opti-cam"} and (summary.images == 2).all()
    assert len(tables.ablation_summary(results).dropna(subset=["AG"])) == 6
    assert results["ablation"]["scores"].reused.sum() == 2      # Mask + Range: the main run's snapshot
    assert set(tables.iteration_curve(results).iteration) == {0, 1, 2}
    assert (tmp_path / "maps" / "mobilenet_v2" / "features.18").is_dir()       # maps from the map store
    assert set(tables.example_maps(results, "mobilenet_v2")) == {"images", "fake-cam", "grad-cam", "opti-cam"}
    again = CHAPTER.run(params)
    assert all(r.from_cache for r in again.values())
    claims = CHAPTER.claims(params)
    assert {c.key for c in claims} >= {"fake-ad", "opti-ag", "speed"}
