"""The lficam chapter (src/camrepro/experiments/lficam/): parameters, data, explanation, claims, a tiny run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from PIL import Image

import camrepro  # noqa: F401
from camrepro import evidence
from camrepro.experiments import registry
from camrepro.experiments.chapter import Results
from camrepro.experiments.lficam import CHAPTER, claims, compute, params, tables, training_throughput
from camrepro import cache
from camrepro.cache import Result

MICRO = {
    "data": {"size": 32, "n_train": 48, "n_test": 24, "n_clutter": 1, "clutter_size": 4},
    "model": {"widths": [4, 4], "blocks": [1, 1], "fin_blocks": 1},
    "train": {"epochs": 1, "batch_size": 16, "warmup_epochs": 0.0},
    "seeds": [0, 1],
    "stability": {"settings": [{}, {"lr": 0.1}], "n_images": 8},
    "evaluation": {"n_images": 8, "batch_size": 16},
    "examples": 2,
    "throughput": {"batch_size": 4, "steps": 1, "warmup": 0},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see the fixture in conftest.py


# ----------------------------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("profile", ["smoke", "book", "paper"])
def test_every_profile_section_is_valid(profile):
    p = CHAPTER.params(profile)
    assert len(p["stability"]["settings"]) >= 2 and p["seeds"]
    if profile in ("book", "paper"):
        assert len(p["seeds"]) >= 5 and len(p["stability"]["settings"]) >= 4
    if profile == "paper":
        assert p["model"]["blocks"] == [3, 4, 6, 3] and p["train"]["epochs"] == 300


def test_the_registry_serves_the_package():
    assert registry.get("lficam") is CHAPTER and CHAPTER.paper == "LFI-CAM"


@pytest.mark.parametrize("override, error, match", [
    ({"colour": True}, ValueError, r"unknown lficam parameter\(s\) \['colour'\]; the known ones are \['data', "),
    ({"evaluation": {"step": 3}}, ValueError, r"known ones are \['batch_size', 'iou_threshold', 'n_images'\]"),
    ({"seeds": "0, 1"}, TypeError, "lficam.seeds must be a list"),
    ({"evaluation": {"n_images": "100"}}, TypeError, "lficam.evaluation.n_images must be an int"),
    ({"seeds": [0, -1]}, ValueError, r"lficam.seeds\[1\] must be ≥ 0"),
    ({"data": {"n_train": -5}}, ValueError, "lficam.data.n_train must be ≥ 1"),
    ({"train": {"epochs": 0}}, ValueError, "lficam.train.epochs must be ≥ 1"),
    ({"data": {"source": "cifar"}}, ValueError, "lficam.data.source must be one of"),
    ({"data": {"source": "image-folder"}}, ValueError, "train_root"),
    ({"seeds": []}, ValueError, "at least 1"),
    ({"seeds": [0, 0]}, ValueError, "distinct"),
    ({"stability": {"settings": [{}]}}, ValueError, "at least 2"),
    ({"stability": {"settings": [{}, {"seed": 3}]}}, ValueError, "must not set 'seed'"),
    ({"stability": {"settings": [{}, {}]}}, ValueError, "distinct"),
    ({"stability": {"settings": [{}, {"momentum_typo": 0.5}]}}, ValueError, r"unknown lficam.train parameter"),
    ({"stability": {"settings": [{}, {"lr": "fast"}]}}, ValueError, "lr must be a number"),
    ({"stability": {"threshold": 1.5}}, ValueError, "threshold must be ≤ 1"),
    ({"stability": {"n_images": 2000}}, ValueError, "exceeds data.n_test"),
    ({"train": {"schedule": "linear"}}, ValueError, "schedule must be one of"),
    ({"model": {"widths": [8, 16], "blocks": [1]}}, ValueError, "same length"),
    ({"model": {"stem_pool": 1}}, TypeError, "stem_pool must be true or false"),
])
def test_bad_parameters_are_rejected_naming_the_key(override, error, match):
    with pytest.raises(error, match=match):
        CHAPTER.params(None, override)


def test_train_config_and_network_spec_follow_the_parameters():
    p = CHAPTER.params(None, {"train": {"lr": 0.2}, "model": {"widths": [8, 8], "blocks": [2, 1]}})
    config = params.train_config(p, 3, {"batch_size": 16})
    assert (config.lr, config.batch_size, config.seed) == (0.2, 16, 3)
    spec = params.network_spec("lficam", p, 10, 1)
    assert spec["kind"] == "lficam" and spec["fin_blocks"] == 4
    assert spec["config"]["widths"] == [8, 8] and spec["config"]["blocks"] == [2, 1]
    assert spec["config"]["mean"] == [0.5] and spec["config"]["std"] == [0.25]
    with pytest.raises(ValueError, match="unknown network"):
        params.network_spec("vgg", p, 10, 1)


def test_data_params_name_exactly_what_defines_the_data(tmp_path):
    canvas = params.data_params(CHAPTER.params(None))
    assert canvas == {"source": "canvas", "size": 40, "n_train": 4000, "n_test": 1000, "n_clutter": 4,
                      "clutter_size": 8, "noise": 0.1, "seed": 0}
    for split in ("a", "b"):
        (tmp_path / split / "cat").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / split / "cat" / "0.png")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    folder = params.data_params(CHAPTER.params(None, {"data": {"source": "image-folder", "train_root": a,
                                                               "test_root": b}}))
    inputs = folder.pop("inputs")
    assert folder == {"source": "image-folder", "train_root": a, "test_root": b, "image_size": 32}
    assert sorted(inputs) == ["data.test_root", "data.train_root"] and inputs["data.train_root"]["files"] == 1


# ----------------------------------------------------------------------------------------------------- data

def test_image_folder_data_is_loaded_with_its_classes(tmp_path):
    for split in ("train", "test"):
        for k, name in enumerate(("cat", "dog")):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (40, 40), (50 * k + 10 * i, 80, 120)).save(folder / f"{i}.png")
    p = CHAPTER.params(None, {"data": {"source": "image-folder", "train_root": str(tmp_path / "train"),
                                       "test_root": str(tmp_path / "test"), "image_size": 16}})
    data = compute.load_data(p)
    assert data.classes == ("cat", "dog") and data.in_channels == 3 and data.masks is None
    images, labels = data.test_tensors(3)
    assert images.shape == (3, 3, 16, 16) and labels.tolist() == [0, 0, 1]
    missing = CHAPTER.params(None, {"data": {"source": "image-folder", "train_root": "no/such/folder",
                                             "test_root": "no/such/folder"}})
    with pytest.raises(FileNotFoundError, match="no/such/folder"):
        compute.load_data(missing)


def test_explain_uses_grad_cam_for_the_plain_network_and_attention_otherwise(tmp_path, monkeypatch):
    from camrepro.methods.attention import AttentionMap
    from camrepro.methods.grad_cam import GradCAM
    from camrepro.training import CachedTraining, build_network, seeded

    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    p = CHAPTER.params(None, MICRO)
    images = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for kind in params.KINDS:
        with seeded(0):
            net = build_network(params.network_spec(kind, p, 10, 1)).eval()
        run = CachedTraining(model=net, history=pd.DataFrame(), result=Result(path=tmp_path / f"train-{kind}-x"))
        explained = compute.explain(kind, run, images, batch_size=2)
        method = GradCAM(net, layer=net.cam_layer) if kind == "plain" else AttentionMap(net)
        torch.testing.assert_close(explained.maps, method(images))
        with torch.no_grad():
            logits = net(images) if kind == "plain" else net(images).logits
        assert torch.equal(explained.predicted, logits.argmax(1)) and explained.all_zero.shape == (5,)


# --------------------------------------------------------------------------------------- claims (synthetic)

def _results(accuracy: dict[str, list[float]], quality: dict[str, list[float]], iou: dict[str, list[float]]) -> Results:
    """Results holding only what the claims read: per-seed accuracies, per-image quality, per-image IoU."""
    seeds = range(len(accuracy["lficam"]))
    acc = pd.DataFrame([{"network": k, "label": params.LABELS[k], "seed": s, "test_accuracy": a,
                         "train_accuracy": a} for k, values in accuracy.items() for s, a in zip(seeds, values)])
    rows = []
    for kind, values in quality.items():     # one value per seed: every image of the seed scores it
        for seed, v in enumerate(values):
            for image in range(3):
                rows.append({"network": kind, "label": params.LABELS[kind], "seed": seed,
                             "image": f"test-{image:05d}", "correct": True, "all_zero": False, "AD": 50 - v,
                             "AI": v, "AG": v, "energy_pointing": v / 100, "pointing": 1.0, "mask_iou": 0.5,
                             "mask_fraction": 0.3})
    stability = pd.DataFrame([{"network": k, "label": params.LABELS[k], "varied": "hyper-parameters",
                               "image": f"test-{i:05d}", "iou": v, "foreground": 0.3, "all_zero_models": 0,
                               "models": 4} for k, values in iou.items() for i, v in enumerate(values)])
    return Results({"training": Result(path=None, tables={"accuracy": acc}),
                    "quality": Result(path=None, tables={"quality": pd.DataFrame(rows)}),
                    "stability": Result(path=None, tables={"stability": stability})})


def _verdicts(results: Results) -> dict[str, str]:
    return {c.key: c.verdict for c in claims.claims(results, {})}


def test_claims_are_decided_when_the_intervals_clear_their_thresholds():
    results = _results(
        accuracy={"plain": [0.70, 0.71, 0.72, 0.70, 0.69], "abn": [0.74, 0.75, 0.73, 0.76, 0.74],
                  "lficam": [0.80, 0.82, 0.81, 0.80, 0.83]},
        quality={"abn": [10, 11, 12, 10, 11], "lficam": [20, 22, 21, 20, 23], "plain": [5, 5, 5, 5, 5]},
        iou={"abn": [0.30, 0.31, 0.29, 0.32, 0.30, 0.28], "lficam": [0.70, 0.72, 0.69, 0.71, 0.73, 0.70]})
    assert _verdicts(results) == {"lficam-accuracy-vs-backbone": evidence.REPRODUCED,
                                  "lficam-accuracy-vs-abn": evidence.REPRODUCED,
                                  "lficam-map-quality": evidence.REPRODUCED,
                                  "lficam-stability": evidence.REPRODUCED}
    accuracy = claims.accuracy_claim(results, "plain").conditions[0]
    # paired by seed: differences 10, 11, 9, 10, 14 points; t-interval over 5 seeds
    assert accuracy.n == 5 and accuracy.interval.method == "t over seeds"
    assert accuracy.interval.estimate == pytest.approx(10.8)
    assert list(accuracy.units) == ["0", "1", "2", "3", "4"]
    quality = claims.quality_claim(results)
    assert [c.rule.holds_when for c in quality.conditions] == ["below", "above", "above", "above"]
    assert quality.conditions[3].interval.estimate == pytest.approx(10.4)    # energy pointing, in %
    stability = claims.stability_claim(results)
    assert [c.rule.threshold for c in stability.conditions] == [0.0, claims.STABILITY_MARGIN]
    assert stability.conditions[0].n == 6 and stability.conditions[0].interval.method == "paired bootstrap"


def test_claims_are_inconclusive_when_the_intervals_straddle_their_thresholds():
    results = _results(
        accuracy={"plain": [0.70, 0.75, 0.68], "abn": [0.72, 0.70, 0.74], "lficam": [0.73, 0.71, 0.72]},
        quality={"abn": [10, 14, 12], "lficam": [13, 11, 12.5], "plain": [5, 5, 5]},
        iou={"abn": [0.30, 0.60, 0.40, 0.50], "lficam": [0.60, 0.50, 0.55, 0.52]})
    verdicts = _verdicts(results)
    assert set(verdicts.values()) == {evidence.INCONCLUSIVE}
    claim = claims.accuracy_claim(results, "abn")
    assert claim.n == "3" and claim.decision().startswith(evidence.INCONCLUSIVE)


def test_stability_is_partly_reproduced_when_the_gap_is_smaller_than_published():
    results = _results(
        accuracy={"plain": [0.7, 0.7], "abn": [0.7, 0.7], "lficam": [0.7, 0.7]},
        quality={"abn": [10, 10], "lficam": [10, 10], "plain": [10, 10]},
        iou={"abn": [0.30, 0.31, 0.29, 0.30, 0.31], "lficam": [0.35, 0.36, 0.34, 0.35, 0.36]})
    assert claims.stability_claim(results).verdict == evidence.PARTLY


def test_the_stability_margin_is_half_the_smallest_published_gap():
    published = tables.published_stability()
    assert claims.STABILITY_MARGIN == pytest.approx((published["LFI-CAM"].min() - published["ABN"].max()) / 2)


# ----------------------------------------------------------------------------------------------- end to end

def test_training_throughput_reports_each_network():
    table = training_throughput(MICRO, steps=1, warmup=0)
    assert list(table.network) == ["plain", "abn", "lficam"]
    assert (table.images_per_second > 0).all() and table.overhead.iloc[0] == 0.0
    assert table.input.iloc[0] == "1×32×32" and (table.parameters.iloc[1:] > table.parameters.iloc[0]).all()


def test_units_and_tables_on_a_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    # the second run must hit the cache whatever else changes in the package meanwhile
    monkeypatch.setattr(cache, "source_hash", lambda *args: "fixed")
    p = CHAPTER.params(None, MICRO)
    results = CHAPTER.run(p)
    assert list(results) == ["training", "quality", "stability", "throughput"]
    assert not any(r.from_cache for r in results.values())
    # 3 networks × 2 seeds, plus the lr=0.1 setting of ABN and LFI-CAM (setting 0 is the seed-0 run)
    assert len(tables.runs(results)) == 8 and len(tables.accuracy(results)) == 6
    assert tables.accuracy_per_seed(results).shape == (2, 3)
    quality = tables.quality(results)
    assert len(quality) == 3 * 2 * 8 and set(quality.image) == {f"test-{i:05d}" for i in range(8)}
    assert quality[["AD", "AI", "AG", "energy_pointing", "pointing", "mask_iou"]].notna().all().all()
    assert quality.energy_pointing.between(0, 100).all()
    per_seed = tables.quality_per_seed(results)
    assert len(per_seed) == 6 and (per_seed.images == 8).all()
    assert tables.quality_summary(results).shape[0] == 3
    stability = tables.stability(results)
    assert set(zip(stability.network, stability.varied)) == {
        ("abn", "hyper-parameters"), ("lficam", "hyper-parameters"), ("abn", "seeds"), ("lficam", "seeds"),
        ("plain", "seeds")}
    assert stability.iou.between(0, 1).all() and (stability.groupby(["network", "varied"]).size() == 8).all()
    assert len(tables.stability_pairs(results)) == 5
    examples = tables.examples(results)
    assert examples["images"].shape == (2, 32, 32) and examples["maps_lficam"].shape == (2, 32, 32)
    assert examples["masks"].shape == (2, 32, 32)
    decided = CHAPTER.claims(p)
    assert [c.key for c in decided] == ["lficam-accuracy-vs-backbone", "lficam-accuracy-vs-abn",
                                        "lficam-map-quality", "lficam-stability"]
    assert all(c.verdict in evidence.VERDICTS for c in decided)
    assert all(r.from_cache for r in CHAPTER.run(p).values())
