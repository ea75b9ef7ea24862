"""The opticam chapter's parameters, summaries and claim verdicts, on hand-made per-image probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camrepro.cache import Result
from camrepro.experiments import opticam as oc

# ---------------------------------------------------------------------------------------------- parameters


def test_defaults_are_valid_and_overrides_merge():
    p = oc.check_params({"optimisation": {"images": 3}, "data": {"n": 5}})
    assert p["optimisation"] == {"images": 3, "iterations": 100, "lr": 0.1}
    assert p["data"]["n"] == 5 and p["data"]["source"] == "ai-benchmark"
    assert p["method_images"] == {"score-cam": 0}


@pytest.mark.parametrize("params,message", [
    ({"itertions": 5}, r"unknown opticam parameters \['itertions'\]"),
    ({"optimisation": {"lr": 0.1, "steps": 3}}, r"unknown opticam.optimisation parameters \['steps'\]"),
    ({"models": ["resnet18"]}, "opticam models must be a non-empty list"),
    ({"data": {"source": "cifar"}}, "unknown opticam data source 'cifar'"),
    ({"targets": "label"}, "needs labelled data"),
    ({"data": {"source": "imagenet-val", "root": "x"}}, "needs data.labels"),
    ({"baselines": ["grad-cam", "opti-cam"]}, "must not list 'opti-cam'"),
    ({"baselines": ["grad-cam", "gradcam"]}, "unknown method 'gradcam'"),
    ({"method_images": {"scorecam": 1}}, "unknown method 'scorecam'"),
    ({"snapshots": [0, 150]}, "snapshot 150 is beyond optimisation.iterations"),
    ({"optimisation": {"images": 0}}, r"optimisation.images must be an int ≥ 1"),
    ({"ablation": {"model": "alexnet"}}, "ablation.model must be one of"),
    ({"optimisation": 5}, "must be a mapping"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises((ValueError, TypeError), match=message):
        oc.check_params(params)


def test_every_profile_section_is_valid():
    for profile in ("smoke", "book", "paper"):
        p = oc.profile_params(profile)
        assert p["optimisation"]["iterations"] >= max(p["snapshots"])
    assert oc.profile_params("paper")["targets"] == "label"
    assert oc.profile_params("smoke", {"optimisation": {"images": 1}})["optimisation"]["images"] == 1


# -------------------------------------------------------------------------------- hand-made per-image results
# One model, four images with p = 0.5, 0.8, 0.2, 0.9. Fake-CAM changes p by ±1e-5; Grad-CAM halves it on the
# first two images and raises image 2 from 0.2 to 0.3; Opti-CAM (images 0-1 only) raises p to 0.75 and 0.9.
P = np.array([0.5, 0.8, 0.2, 0.9])
O = {"fake-cam": P + np.array([1e-5, -1e-5, 1e-5, -1e-5]),
     "grad-cam": np.array([0.25, 0.4, 0.3, 0.9]),
     "opti-cam": np.array([0.75, 0.9])}


def _scores() -> pd.DataFrame:
    frames = []
    for method, o in O.items():
        n = len(o)
        frames.append(pd.DataFrame({"method": method, "image": np.arange(n), "space": "pixel", "p": P[:n], "o": o}))
        # normalised space, on Opti-CAM's two images: everything scores o = p (no change)
        frames.append(pd.DataFrame({"method": method, "image": np.arange(2), "space": "normalized",
                                    "p": P[:2], "o": P[:2]}))
    return pd.concat(frames, ignore_index=True)


def fake_results() -> dict[str, Result]:
    faith = Result(path=Path("."), tables={
        "scores": _scores(),
        "insertion_deletion": pd.DataFrame({"method": ["grad-cam", "opti-cam"], "image": [0, 0],
                                            "insertion": [0.6, 0.5], "deletion": [0.1, 0.2]}),
        "iterations": pd.DataFrame({"iteration": [0, 0, 50, 50, 100, 100], "image": [0, 1] * 3,
                                    "p": list(P[:2]) * 3, "o": [0.5, 0.2, 0.6, 0.4, 0.75, 0.9]}),
        "timing": pd.DataFrame({"method": ["fake-cam", "grad-cam", "opti-cam"], "images": [4, 4, 2],
                                "seconds_per_image": [0.0, 0.1, 9.0]}),
    }, arrays={"trajectories": {"objective": np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 1.5]])}})
    ablation = Result(path=Path("."), tables={"scores": pd.DataFrame({
        "objective": ["mask", "mask", "mask", "diff", "diff", "diff"],
        "normalization": ["range", "max", "sigmoid", "range", "max", "sigmoid"],
        "image": [0] * 6, "p": [0.5] * 6, "o": [0.9, 0.9, 0.6, 0.55, 0.5, 0.4], "model": "mobilenet_v2"})})
    protocol = Result(path=Path("."), tables={"scores": pd.DataFrame({
        "image": [0, 1, 0, 1], "space": ["pixel", "pixel", "normalized", "normalized"], "p": list(P[:2]) * 2,
        "o": [0.5, 0.8, 0.9, 0.95], "model": "mobilenet_v2", "method": "opti-cam", "optimised_in": "normalized"})})
    return {"faithfulness-mobilenet_v2": faith, "ablation": ablation, "protocol": protocol}


def test_faithfulness_summary_by_hand():
    table = oc.faithfulness_summary(fake_results()).set_index("method")
    assert table.loc["grad-cam", "AD"] == pytest.approx(25.0)          # (0.5 + 0.5 + 0 + 0) / 4
    assert table.loc["grad-cam", "AI"] == pytest.approx(25.0)          # only image 2 rises
    assert table.loc["grad-cam", "AG"] == pytest.approx(100 * 0.125 / 4)  # (0.3 − 0.2) / (1 − 0.2) on image 2
    assert table.loc["fake-cam", "AI"] == pytest.approx(50.0)
    assert table.loc["fake-cam", "AG"] == pytest.approx(100 * (1e-5 / 0.5 + 1e-5 / 0.8) / 4, rel=1e-6)
    assert table.loc["opti-cam", "AG"] == pytest.approx(50.0)          # 0.25 / 0.5 and 0.1 / 0.2
    assert table.loc["opti-cam", "images"] == 2 and table.loc["grad-cam", "images"] == 4


def test_comparison_keeps_opti_cams_images():
    table = oc.comparison(fake_results()).set_index("method")
    assert table.loc["grad-cam", "AD"] == pytest.approx(50.0)          # images 0 and 1 only
    assert table.loc["grad-cam", "images"] == 2
    assert table.loc["opti-cam", "insertion"] == pytest.approx(50.0)
    assert table.loc["grad-cam", "deletion"] == pytest.approx(10.0)
    assert np.isnan(table.loc["fake-cam", "insertion"])
    assert table.loc["opti-cam", "seconds_per_image"] == 9.0
    assert oc.best_baseline(table.reset_index().assign(model="mobilenet_v2"), "mobilenet_v2", "AD",
                            higher=False) == ("grad-cam", pytest.approx(50.0))


def test_iteration_curve_and_trajectories():
    curve = oc.iteration_curve(fake_results()).set_index("iteration")
    assert curve.AG[0] == pytest.approx(0.0)
    assert curve.AG[50] == pytest.approx(100 * (0.1 / 0.5 + 0.0) / 2)    # image 1 drops: no gain
    assert curve.AG[100] == pytest.approx(50.0)
    traj = oc.objective_trajectories(fake_results())
    assert traj.shape == (6, 4) and traj.objective.tolist() == [1.0, 2.0, 3.0, 0.0, 1.0, 1.5]


def test_ablation_and_protocol_summaries():
    ab = oc.ablation_summary(fake_results()).set_index(["objective", "normalization"])
    assert ab.AG["mask", "range"] == pytest.approx(80.0)
    assert ab.AG["diff", "max"] == pytest.approx(0.0)
    assert ab["AG published"]["mask", "range"] == 66.3              # Table 6 quoted beside ours
    proto = oc.protocol_summary(fake_results())
    opti = proto[proto.method == "opti-cam"].set_index(["optimised_in", "space"]).AG
    assert opti["pixel", "pixel"] == pytest.approx(50.0)
    assert opti["pixel", "normalized"] == pytest.approx(0.0)
    assert opti["normalized", "normalized"] == pytest.approx(100 * (0.4 / 0.5 + 0.15 / 0.2) / 2)


def test_claim_verdicts_follow_their_rules():
    claims = oc.claims(oc.DEFAULTS, results=fake_results())
    assert list(claims.columns) == ["paper", "claim", "published", "ours", "verdict", "source"]
    assert len(claims) == len(oc.CLAIMS) == len(oc.claim_rules())
    verdict = dict(zip([c.key for c in oc.CLAIMS], claims.verdict))
    assert verdict["fake-ad"] == "reproduced"            # ~1e-3 % vs 25 %
    assert verdict["fake-ai"] == "reproduced"            # 50 % vs the one baseline's 25 %
    assert verdict["fake-ag"] == "reproduced"            # ~4e-4 % vs 3.1 %
    assert verdict["opti-ag"] == "reproduced"            # 50 % vs 0 % on images 0-1
    assert verdict["opti-ad-ai"] == "reproduced"
    assert verdict["insertion-deletion"] == "reproduced"  # 50 < 60 and 20 > 10
    assert verdict["objective"] == "reproduced"          # 80/80/20 vs 10/0/0
    assert verdict["sigmoid"] == "reproduced"            # 20 < 80 / 2
    assert verdict["iterations"] == "reproduced"         # AG(100) highest, above AG(50)
    assert verdict["protocol"] == "partly reproduced"    # Opti-CAM on top in both spaces; Grad-CAM unchanged
    assert verdict["speed"] == "not testable here"       # Score-CAM not run
    assert set(claims.paper) == {"Opti-CAM"}
    assert claims.published.str.contains(r"\(Table 1\)").iloc[0]


@pytest.mark.slow
def test_run_end_to_end_at_a_tiny_scale(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    params = {"models": ["mobilenet_v2"], "data": {"n": 2, "size": 64}, "baselines": ["fake-cam", "grad-cam"],
              "method_images": {}, "optimisation": {"images": 1, "iterations": 2}, "snapshots": [0, 2],
              "insertion_deletion": {"images": 1, "steps": 2}, "ablation": {"images": 1},
              "protocol": {"images": 1}, "cost": {"iterations": 1, "batch": 1}, "examples": 1, "batch_size": 2}
    results = oc.run(params)
    assert set(results) == {"faithfulness-mobilenet_v2", "ablation", "protocol", "cost"}
    scores = results["faithfulness-mobilenet_v2"]["scores"]
    assert set(scores.method) == {"fake-cam", "grad-cam", "opti-cam"}
    assert len(oc.ablation_summary(results)) == 6
    again = oc.run(params)
    assert all(r.from_cache for r in again.values())
    assert len(oc.claims(params, results=again)) == len(oc.CLAIMS)
