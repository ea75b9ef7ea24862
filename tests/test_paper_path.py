"""The paper path end to end on small inputs: every chapter at the ``paper`` profile, on a tiny ImageNet-style
validation folder with labels, stand-in ResNet-50 / VGG16 weights named in the ``weights`` parameter and tiny
ImageFolder trees for LFI-CAM, every count at its minimum (issue 12, item 6).

Each chapter goes through the chapter contract as a reader's notebook does —
``registry.get(name).params("paper", overrides)``, ``.run``, every table of its ``tables`` module, ``.claims``
and the report's claims table —
so the loading code, the user-weights path, the content keys and the claims of the paper profile cannot rot.
The models, methods, layers and protocol switches of ``paper.yaml`` are kept; only counts (photos, steps,
iterations, epochs, seeds, rounds) and the LFI-CAM backbone's widths (its depth and block type are kept) are
brought down. A second run of a chapter must be a cache hit for every unit.
"""

from __future__ import annotations

import inspect
from importlib import import_module

import pandas as pd
import pytest

import camrepro  # noqa: F401  (torchvision compat)
from camrepro import report
from camrepro.evidence import Claim
from camrepro.experiments import registry
from paper_inputs import image_folder_tree, imagenet_val, minimal_overrides, photos_tensor, stand_in_weights

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """The reader's files, and a results folder of their own (the repository's cache is left alone)."""
    root = tmp_path_factory.mktemp("reader")
    folder, labels = imagenet_val(root / "imagenet")
    photos = photos_tensor(folder)
    weights = {name: str(stand_in_weights(root / "weights", name, photos)) for name in ("resnet50", "vgg16")}
    train = image_folder_tree(root / "cifar" / "train", per_class=4)
    test = image_folder_tree(root / "cifar" / "test", per_class=2, seed=1)
    images = {"root": str(folder), "labels": str(labels)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAMREPRO_RESULTS", str(root / "results"))
        yield {"images": images, "weights": weights, "train": train, "test": test}


def _tables(name: str, results) -> int:
    """Call every table function of the chapter's ``tables`` module that takes only the results."""
    module = import_module(f"camrepro.experiments.{name}.tables")
    called = 0
    for function_name, function in inspect.getmembers(module, inspect.isfunction):
        if function.__module__ != module.__name__ or function_name.startswith("_"):
            continue
        required = [p.name for p in inspect.signature(function).parameters.values()
                    if p.default is inspect.Parameter.empty]
        if required == ["results"]:
            function(results)
            called += 1
    return called


@pytest.mark.parametrize("name", ["opticam", "liftcam", "afmi", "lficam", "benchmark"])
def test_chapter_runs_at_the_paper_profile_on_small_inputs(name, reader):
    chapter = registry.get(name)
    overrides = minimal_overrides(name, reader["images"], reader["weights"], reader["train"], reader["test"])
    params = chapter.params("paper", overrides)
    paper = chapter.params("paper")
    for key in ("models", "methods", "targets", "layers", "baselines"):
        if key in params:
            assert params[key] == paper[key], key          # the paper's setting, not a smaller one
    results = chapter.run(params, "cpu")
    assert results and not any(r.from_cache for r in results.values())
    for unit, result in results.items():
        assert result.tables or result.arrays, unit
        recorded = result.manifest["parameters"]
        if name in ("opticam", "liftcam", "afmi"):             # the reader's photos, labels and weights
            inputs = recorded["inputs"]
            assert inputs["images.labels"]["sha256"] and inputs["images.root"]["files"] == 8, unit
            own = [k for k, v in inputs.items() if k.startswith("weights.") and v["file"].startswith("my-")]
            assert own, unit
        elif name == "lficam":                                  # the reader's ImageFolder trees
            assert recorded["data"]["inputs"]["data.train_root"]["files"] == 8, unit
    assert _tables(name, results) >= 3
    claims = chapter.claims(params, "cpu")
    assert claims and all(isinstance(c, Claim) and c.chapter == name for c in claims)
    table = report.claims_table(claims)
    assert isinstance(table, pd.DataFrame) and len(table) == len(claims)
    again = chapter.run(params, "cpu")
    assert all(r.from_cache for r in again.values())
