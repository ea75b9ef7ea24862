"""The lficam chapter's experiment module (src/camrepro/experiments/lficam.py): parameters, data, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

import camrepro  # noqa: F401
from camrepro.experiments import lficam
from camrepro.provenance import repository_root
from camrepro.report import validate_claims

MICRO = {
    "data": {"size": 32, "n_train": 48, "n_test": 24, "n_clutter": 1, "clutter_size": 4},
    "model": {"widths": [4, 4], "blocks": [1, 1], "fin_blocks": 1},
    "train": {"epochs": 1, "batch_size": 16, "warmup_epochs": 0.0},
    "seeds": [0, 1],
    "stability": {"settings": [{}, {"lr": 0.1}], "n_images": 8},
    "evaluation": {"n_images": 8, "steps": 4, "batch_size": 16},
    "examples": 2,
    "throughput": {"batch_size": 4, "steps": 1, "warmup": 0},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: intra-op threads only add synchronisation (see tests/test_training.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------- parameters

def test_merge_params_is_recursive_and_rejects_unknown_keys():
    merged = lficam.merge_params({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"d": 4}})
    assert merged == {"a": 1, "b": {"c": 2, "d": 4}}
    with pytest.raises(ValueError, match=r"unknown lficam.b parameters \['e'\]"):
        lficam.merge_params({"b": {"c": 2}}, {"b": {"e": 1}})
    with pytest.raises(TypeError, match="mapping"):
        lficam.merge_params({"b": {"c": 2}}, {"b": 3})


@pytest.mark.parametrize("profile", ["smoke", "book", "paper"])
def test_every_profile_section_is_valid(profile):
    path = repository_root() / "notebooks" / "params" / f"{profile}.yaml"
    section = yaml.safe_load(path.read_text())["lficam"]
    p = lficam.check_params(section)
    assert len(p["stability"]["settings"]) >= 2 and p["seeds"]
    if profile == "book":
        assert len(p["stability"]["settings"]) >= 4
    if profile == "paper":
        assert p["model"]["blocks"] == [3, 4, 6, 3] and p["train"]["epochs"] == 300


@pytest.mark.parametrize("override, match", [
    ({"data": {"source": "cifar"}}, "unknown lficam data source"),
    ({"data": {"source": "image-folder"}}, "train_root"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "distinct"),
    ({"stability": {"settings": [{}]}}, "at least 2"),
    ({"stability": {"settings": [{}, {"seed": 3}]}}, "must not set 'seed'"),
    ({"stability": {"settings": [{}, {}]}}, "distinct"),
    ({"stability": {"settings": [{}, {"momentum_typo": 0.5}]}}, "unknown lficam.train parameters"),
    ({"stability": {"thresholds": [1.5]}}, "threshold"),
    ({"train": {"schedule": "linear"}}, "schedule"),
    ({"model": {"widths": [8, 16], "blocks": [1]}}, "same length"),
    ({"evaluation": {"steps": 0}}, "evaluation.steps"),
    ({"colour": True}, "unknown lficam parameters"),
])
def test_bad_parameters_are_rejected(override, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lficam.check_params(override)


def test_train_config_and_network_spec_follow_the_parameters():
    p = lficam.check_params({"train": {"lr": 0.2}, "model": {"widths": [8, 8], "blocks": [2, 1]}})
    config = lficam.train_config(p, 3, {"batch_size": 16})
    assert (config.lr, config.batch_size, config.seed) == (0.2, 16, 3)
    spec = lficam.network_spec("lficam", p, 10, 1)
    assert spec["kind"] == "lficam" and spec["fin_blocks"] == 4
    assert spec["config"]["widths"] == [8, 8] and spec["config"]["blocks"] == [2, 1]
    assert spec["config"]["mean"] == [0.5] and spec["config"]["std"] == [0.25]
    with pytest.raises(ValueError, match="unknown network"):
        lficam.network_spec("vgg", p, 10, 1)


def test_data_params_name_exactly_what_defines_the_data():
    canvas = lficam.data_params(lficam.check_params({}))
    assert canvas == {"source": "canvas", "size": 40, "n_train": 4000, "n_test": 1000, "n_clutter": 4,
                      "clutter_size": 8, "noise": 0.1, "seed": 0}
    folder = lficam.data_params(lficam.check_params({"data": {"source": "image-folder", "train_root": "a",
                                                              "test_root": "b"}}))
    assert folder == {"source": "image-folder", "train_root": "a", "test_root": "b", "image_size": 32}


def test_explain_uses_grad_cam_for_the_plain_network_and_attention_otherwise():
    from camrepro.methods.attention import AttentionMap
    from camrepro.methods.grad_cam import GradCAM
    from camrepro.training import build_network, seeded

    p = lficam.check_params(MICRO)
    images = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for kind in lficam.KINDS:
        with seeded(0):
            net = build_network(lficam.network_spec(kind, p, 10, 1)).eval()
        maps, predicted = lficam.explain(kind, net, images, batch_size=2)
        method = GradCAM(net, layer=net.cam_layer) if kind == "plain" else AttentionMap(net)
        torch.testing.assert_close(maps, method(images))
        with torch.no_grad():
            logits = net(images) if kind == "plain" else net(images).logits
        assert torch.equal(predicted, logits.argmax(1))


# ----------------------------------------------------------------------------------------------------- data

def test_image_folder_data_is_loaded_with_its_classes(tmp_path):
    for split in ("train", "test"):
        for k, name in enumerate(("cat", "dog")):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (40, 40), (50 * k + 10 * i, 80, 120)).save(folder / f"{i}.png")
    p = lficam.check_params({"data": {"source": "image-folder", "train_root": str(tmp_path / "train"),
                                      "test_root": str(tmp_path / "test"), "image_size": 16}})
    data = lficam.load_data(p)
    assert data.classes == ("cat", "dog") and data.in_channels == 3 and data.boxes is None
    images, labels = data.test_tensors(3)
    assert images.shape == (3, 3, 16, 16) and labels.tolist() == [0, 0, 1]
    missing = lficam.check_params({"data": {"source": "image-folder", "train_root": "no/such/folder",
                                            "test_root": "no/such/folder"}})
    with pytest.raises(FileNotFoundError, match="no/such/folder"):
        lficam.load_data(missing)


# -------------------------------------------------------------------------------------------- verdict rules

def test_accuracy_verdict_known_values():
    verdict, d, se = lficam.accuracy_verdict([0.80, 0.82, 0.84], [0.70, 0.72, 0.74])
    # d = 0.10; each sample's variance is 0.0004, so se = √(2 · 0.0004 / 3) = 0.016330
    assert verdict == "reproduced" and d == pytest.approx(0.10) and se == pytest.approx(math.sqrt(0.0008 / 3))
    assert lficam.accuracy_verdict([0.80, 0.82, 0.84], [0.80, 0.81, 0.86])[0] == "partly reproduced"
    assert lficam.accuracy_verdict([0.60, 0.61, 0.62], [0.80, 0.81, 0.82])[0] == "not reproduced"
    # one seed each: se = 0, so any positive difference counts
    assert lficam.accuracy_verdict([0.81], [0.80])[0] == "reproduced"


def test_quality_wins_and_verdicts_known_values():
    quality = pd.DataFrame({
        "network": ["lficam", "lficam", "abn", "abn"],
        "AD": [10.0, 12.0, 20.0, 20.0],          # LFI lower: win
        "AI": [30.0, 30.0, 40.0, 40.0],          # LFI lower: loss
        "AG": [5.0, 7.0, 5.0, 5.0],              # LFI 6 > 5: win
        "deletion": [0.2, 0.2, 0.1, 0.1],        # LFI higher: loss
        "insertion": [0.5, 0.5, 0.4, 0.4],       # win
        "energy_pointing": [0.6, 0.6, 0.6, 0.6],  # tie: not a win
        "pointing": [np.nan, np.nan, np.nan, np.nan],  # missing: not compared
        "box_iou": [0.3, 0.5, 0.2, 0.2],         # win
    })
    assert lficam.quality_wins(quality) == (4, 7)
    assert lficam.quality_verdict(4, 7) == "partly reproduced"    # 4/7 < 2/3
    assert lficam.quality_verdict(5, 7) == "reproduced"
    assert lficam.quality_verdict(2, 7) == "not reproduced"       # 2/7 < 1/3
    assert lficam.quality_verdict(0, 0) == "not testable here"
    assert lficam.stability_verdict(0.60, 0.30) == "reproduced"
    assert lficam.stability_verdict(0.40, 0.30) == "partly reproduced"
    assert lficam.stability_verdict(0.30, 0.30) == "not reproduced"


# ----------------------------------------------------------------------------------------------- end to end

def test_training_throughput_reports_each_network():
    table = lficam.training_throughput(MICRO, steps=1, warmup=0)
    assert list(table.network) == ["plain", "abn", "lficam"]
    assert (table.images_per_second > 0).all() and table.overhead.iloc[0] == 0.0
    assert table.input.iloc[0] == "1×32×32" and (table.parameters.iloc[1:] > table.parameters.iloc[0]).all()


@pytest.mark.slow
def test_run_and_claims_on_a_micro_scale(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    results = lficam.run(MICRO)
    evaluation = results["evaluation"]
    assert not evaluation.from_cache
    # 3 networks × 2 seeds, plus the lr=0.1 setting of ABN and LFI-CAM (setting 0 is the seed-0 run)
    assert len(evaluation["runs"]) == 8 and len(evaluation["accuracy"]) == 6
    quality = evaluation["quality"]
    assert set(quality.network) == {"plain", "abn", "lficam"}
    measures = ["AD", "AI", "AG", "deletion", "insertion", "energy_pointing", "box_iou"]
    assert quality[measures].notna().all().all()
    stability = evaluation["stability"]
    assert set(zip(stability.network, stability.varied)) == {
        ("abn", "hyper-parameters"), ("lficam", "hyper-parameters"), ("abn", "seeds"), ("lficam", "seeds"),
        ("plain", "seeds")}
    assert stability.mean_iou.between(0, 1).all()
    examples = evaluation.arrays["examples"]
    assert examples["images"].shape == (2, 32, 32) and examples["maps_lficam"].shape == (2, 32, 32)
    claims = validate_claims(lficam.claims(MICRO), "lficam")
    assert len(claims) == 4 and set(claims.paper) == {"LFI-CAM"}
    assert lficam.run(MICRO)["evaluation"].from_cache
