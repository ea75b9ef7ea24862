"""The reader's own inputs at the paper profile: keyed by content, their own weights, one path rule, checks
before computing, and a profile of their own (camrepro.experiments.kit.inputs, camrepro.data.fingerprint)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import camrepro  # noqa: F401  (torchvision compat)
from camrepro import cache, models
from camrepro.data.fingerprint import folder_fingerprint
from camrepro.data.paths import user_path
from camrepro.experiments import registry
from camrepro.experiments.chapter import cached_unit
from camrepro.experiments.kit import images as kit_images
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit.maps import MapStore
from camrepro.experiments.lficam.compute import load_data
from camrepro.experiments.lficam.params import data_params
from camrepro.methods.grad_cam import GradCAM
from paper_inputs import image_folder_tree, imagenet_val


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.fixture
def val(tmp_path):
    return imagenet_val(tmp_path / "imagenet", n=6, size=32)


def _opticam(val, **extra):
    folder, labels = val
    overrides = {"models": ["mobilenet_v2"], "images": {"source": "imagenet-val", "root": str(folder),
                                                        "labels": str(labels), "n": 4, "size": 32},
                 "targets": "label", **extra}
    chapter = registry.get("opticam")
    return chapter, chapter.params("smoke", overrides)


def _keys(chapter, params):
    return {u.name: cache.cache_key(u.name, u.params) for u in chapter.units(params)}


def _counting_unit(chapter, params, calls):
    unit = next(u for u in chapter.units(params) if u.name.startswith("faithfulness-"))

    def compute(device):
        calls.append(device)
        return {"t": pd.DataFrame({"x": [1]})}
    return cached_unit(chapter.name, unit.name, unit.params, compute, "cpu")


# ------------------------------------------------------------------------------------------ content keys

def test_edited_labels_file_recomputes_and_unchanged_inputs_hit(val, results):
    chapter, params = _opticam(val)
    calls: list[str] = []
    first = _counting_unit(chapter, params, calls)
    again = _counting_unit(chapter, params, calls)
    assert calls == ["cpu"] and again.from_cache and again.path == first.path
    labels = val[1]
    labels.write_text(labels.read_text().replace(" 0\n", " 7\n", 1))   # one label edited, same names
    edited = _counting_unit(chapter, params, calls)
    assert calls == ["cpu", "cpu"] and not edited.from_cache and edited.path != first.path
    assert edited.manifest["parameters"]["inputs"]["images.labels"]["sha256"] == \
        kit_inputs.contents("x", kit_inputs.image_inputs(params["images"]))["images.labels"]["sha256"]


def test_replaced_image_changes_every_unit_key(val):
    chapter, params = _opticam(val)
    before = _keys(chapter, params)
    assert before == _keys(chapter, params)
    photo = sorted(val[0].iterdir())[0]
    photo.write_bytes(photo.read_bytes() + b"\0")          # another size: another image
    after = _keys(chapter, params)
    assert all(before[name] != after[name] for name in before)


def test_folder_fingerprint_sees_names_sizes_and_mtimes(tmp_path):
    root = image_folder_tree(tmp_path / "tree", per_class=2)
    first = folder_fingerprint(root)
    assert first == folder_fingerprint(root) and first["files"] == 4
    image = root / "cat" / "000.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = folder_fingerprint(root)
    assert touched["sha256"] != first["sha256"]
    (root / "cat" / "000.png").rename(root / "cat" / "zzz.png")
    assert folder_fingerprint(root)["sha256"] != touched["sha256"]


def test_swapped_lficam_training_images_retrain(tmp_path):
    train = image_folder_tree(tmp_path / "train", per_class=2)
    test = image_folder_tree(tmp_path / "test", per_class=1, seed=1)
    chapter = registry.get("lficam")
    params = chapter.params("paper", {"data": {"train_root": str(train), "test_root": str(test)}})
    before, keys = data_params(params), _keys(chapter, params)
    assert data_params(params) == before and _keys(chapter, params) == keys
    swapped = image_folder_tree(tmp_path / "other", per_class=2, seed=5)
    for name in ("cat", "dog"):
        for path in (swapped / name).iterdir():
            os.replace(path, train / name / path.name)
    assert data_params(params)["inputs"] != before["inputs"]
    assert all(keys[name] != key for name, key in _keys(chapter, params).items())


@pytest.mark.parametrize("name", ["benchmark", "opticam", "liftcam", "afmi", "lficam"])
@pytest.mark.parametrize("profile", ["smoke", "book"])
def test_packaged_data_keys_carry_no_fingerprint(name, profile):
    chapter = registry.get(name)
    params = chapter.params(profile)
    for unit in chapter.units(params):
        assert "inputs" not in unit.params, unit.name
        assert "inputs" not in unit.params.get("data", {}), unit.name


# ------------------------------------------------------------------------------------------ user weights

@pytest.fixture
def own_weights(tmp_path):
    import torchvision

    torch.manual_seed(3)
    net = torchvision.models.mobilenet_v2()
    path = tmp_path / "weights" / "mobilenet_v2-finetuned-on-my-data.pth"
    path.parent.mkdir()
    torch.save(net.state_dict(), path)
    return path, net.eval()


def test_own_weights_load_with_their_sha256(own_weights):
    path, reference = own_weights
    net, _ = models.load("mobilenet_v2", weights=str(path))
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor(models.MODELS["mobilenet_v2"].mean).view(1, 3, 1, 1)
    std = torch.tensor(models.MODELS["mobilenet_v2"].std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference((x - mean) / std))
    digest = models.weights_of(net)
    assert digest == models.user_weights("mobilenet_v2", path)[1] and len(digest) == 64
    packaged, _ = models.load("mobilenet_v2")
    assert models.weights_of(packaged) is None


def test_own_weights_are_part_of_the_key_the_manifest_and_the_map_store(own_weights, val, results):
    path, _ = own_weights
    chapter, params = _opticam(val, weights={"mobilenet_v2": str(path)})
    _, plain = _opticam(val)
    assert set(_keys(chapter, params).values()).isdisjoint(_keys(chapter, plain).values())
    result = _counting_unit(chapter, params, [])
    recorded = result.manifest["parameters"]["inputs"]["weights.mobilenet_v2"]
    assert recorded == {"file": path.name, "sha256": models.user_weights("mobilenet_v2", path)[1]}
    net, _ = models.load("mobilenet_v2", weights=str(path))
    own_store = MapStore(GradCAM(net, "features.18"), "mobilenet_v2", "grad-cam")
    packaged, _ = models.load("mobilenet_v2")
    packaged_store = MapStore(GradCAM(packaged, "features.18"), "mobilenet_v2", "grad-cam")
    assert own_store.folder != packaged_store.folder


def test_bad_weight_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load("mobilenet_v2", weights=str(tmp_path / "absent.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch weights file"):
        models.load("mobilenet_v2", weights=str(junk))
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match="does not fit the mobilenet_v2 architecture"):
        models.load("mobilenet_v2", weights=str(other))
    with pytest.raises(ValueError, match="unknown model"):
        registry.get("opticam").params("smoke", {"weights": {"resnet18": "x.pth"}})


# --------------------------------------------------------------------------------- checks before computing

def test_missing_inputs_are_reported_at_once_before_computing(tmp_path, results, monkeypatch):
    monkeypatch.setenv("CAMREPRO_WEIGHTS", str(tmp_path / "no-weights"))
    chapter = registry.get("opticam")
    params = chapter.params("paper", {"images": {"root": str(tmp_path / "val"),
                                                 "labels": str(tmp_path / "labels.txt")},
                                      "weights": {"vgg16": str(tmp_path / "mine.pth")}})
    with pytest.raises(kit_inputs.MissingInputs) as error:
        chapter.run(params)
    text = str(error.value)
    for what in ("images.root", "images.labels", "weights.resnet50", "weights.vgg16"):
        assert what in text
    assert "resnet50-0676ba61.pth" in text and "mine.pth" in text and "4 input(s) missing" in text
    assert not results.exists() or not any(results.rglob("manifest.json"))


def test_missing_lficam_folders_are_reported_at_once(tmp_path):
    chapter = registry.get("lficam")
    params = chapter.params("paper", {"data": {"train_root": str(tmp_path / "a"),
                                               "test_root": str(tmp_path / "b")}})
    with pytest.raises(kit_inputs.MissingInputs, match="2 input") as error:
        chapter.run(params)
    assert "data.train_root" in str(error.value) and "data.test_root" in str(error.value)


@pytest.mark.parametrize("name, overrides, message", [
    ("benchmark", {"images": {"n": 3}, "grids": {"n": 1}}, "needs at least 4 photos"),
    ("liftcam", {"images": {"n": 3}, "shap": {"images": 1}, "grids": {"n": 1}}, "needs at least 4 photos"),
    ("afmi", {"images": {"n": 3}, "grids": {"n": 1}}, "needs at least 4 photos"),
    ("liftcam", {"shap": {"permutations": 6}}, "permutations must be ≥ 8"),
    ("liftcam", {"shap": {"permutations": 10}}, "multiple of 4"),
    ("afmi", {"references": {"other_photo": "skimage/no-such-photo"}}, "not a packaged photo"),
    ("afmi", {"saturation": {"pool": 500}}, "saturation.pool = 500"),
    ("opticam", {"images": {"n": 500}}, "n = 500"),
])
def test_requirements_are_checked_when_parameters_are_resolved(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        registry.get(name).params("smoke", overrides)


def test_benchmark_without_grids_needs_no_four_photos():
    assert registry.get("benchmark").params("smoke", {"images": {"n": 2}, "grids": {"n": 0},
                                                      "insertion_deletion": {"images": 2},
                                                      "randomisation": {"images": 2}})["images"]["n"] == 2


# ---------------------------------------------------------------------------------------- one path rule

def test_relative_paths_resolve_from_the_repository_root_whatever_the_cwd(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    elsewhere.mkdir()
    imagenet_val(root / "data" / "raw" / "imagenet", n=4, size=32)
    image_folder_tree(root / "data" / "raw" / "cifar" / "train", per_class=1)
    image_folder_tree(root / "data" / "raw" / "cifar" / "test", per_class=1, seed=1)
    monkeypatch.setenv("CAMREPRO_ROOT", str(root))
    monkeypatch.setenv("CAMREPRO_WEIGHTS", "data/raw/weights")
    monkeypatch.chdir(elsewhere)
    assert user_path("data/raw/x") == root / "data" / "raw" / "x"
    assert user_path("/abs/x") == Path("/abs/x")
    assert user_path("~/x") == Path.home() / "x"
    assert models.weights_folder() == root / "data" / "raw" / "weights"
    section = {"source": "imagenet-val", "root": "data/raw/imagenet/val",
               "labels": "data/raw/imagenet/val_labels.txt", "n": 4, "size": 32, "seed": 0}
    for name in ("opticam", "liftcam", "afmi", "benchmark"):
        extra = {"shap": {"images": 1}} if name == "liftcam" else {}
        params = registry.get(name).params(None, {"images": section, **extra})
        found = kit_inputs.image_inputs(params["images"])
        assert [i.path for i in found] == [root / "data/raw/imagenet/val",
                                           root / "data/raw/imagenet/val_labels.txt"]
    assert kit_images.load(section).count == 4
    lficam = registry.get("lficam").params(None, {"data": {"source": "image-folder",
                                                           "train_root": "data/raw/cifar/train",
                                                           "test_root": "data/raw/cifar/test"}})
    data = load_data(lficam)
    assert len(data.train) == 2 and len(data.test) == 2
    weights = kit_inputs.weight_inputs(["resnet50"], {})
    assert weights[0].path == root / "data/raw/weights/resnet50-0676ba61.pth"


# ---------------------------------------------------------------------------------------- own profiles

def test_a_profile_of_the_readers_own(tmp_path):
    chapter = registry.get("afmi")
    section = {"images": {"n": 4}, "chunk": 3}
    assert chapter.params("my-cluster", section) == chapter.params(None, section)
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump({"profile": "own", "device": "cuda", "afmi": section}))
    assert chapter.params(str(own)) == chapter.params(None, section)
    assert chapter.params(str(own), {"chunk": 5})["chunk"] == 5
    with pytest.raises(ValueError, match="unknown profile 'my-cluster'"):
        chapter.params("my-cluster")
    assert chapter.params("paper", {"chunk": 3})["models"] == ["resnet50", "vgg16"]
