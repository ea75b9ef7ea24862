"""The chapters' parameter-dependent prose describes the setup that ran, at every profile and with overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from camrepro.experiments import registry
from camrepro.experiments.afmi import setup_text as afmi_text
from camrepro.experiments.kit import setup_text as kit
from camrepro.experiments.liftcam import setup_text as liftcam_text
from camrepro.experiments.opticam import setup_text as opticam_text


def params_of(name: str, profile: str, overrides=None):
    chapter = registry.get(name)
    return chapter.params(profile, overrides), kit.profile_defaults(chapter, profile)


def test_listing_and_overridden_known_answers():
    assert kit.listing([]) == "" and kit.listing(["a"]) == "a" and kit.listing(["a", "b", "c"]) == "a, b and c"
    assert kit.overridden({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2, "d": 4}}) == ["b.d"]
    assert kit.profile_phrase("paper", []) == "the `paper` profile"
    assert kit.profile_phrase("paper", ["images.n"]) == "the `paper` profile with 1 parameter overridden (`images.n`)"


def test_tails():
    assert kit.tail_is_linear("mobilenet_v2", "features.18") and kit.tail_is_linear("resnet50", "layer4")
    assert not kit.tail_is_linear("mobilenet_v2", "features.17")
    assert not kit.tail_is_linear("vgg16", "features.29"), "VGG16's features.29 is followed by max-pool + ReLUs"


def test_opticam_paper_profile_wording():
    params, defaults = params_of("opticam", "paper")
    text = opticam_text.protocol(params, "paper", defaults)
    assert "ResNet-50 and VGG16" in text and "torchvision ImageNet weights the reader provides" in text
    assert "MobileNetV2" not in text and "no labels" not in text and "ai-benchmark" not in text
    assert "**ground-truth class**" in text and "50,000 images of the ImageNet validation folder" in text
    assert "**Scale: the `paper` profile.**" in text
    deviation = opticam_text.data_deviation(params)
    assert "the paper's, ResNet50 and VGG16" in deviation and "unlabelled" not in deviation


def test_opticam_book_profile_wording():
    params, defaults = params_of("opticam", "book")
    text = opticam_text.protocol(params, "book", defaults)
    assert "MobileNetV2 and EfficientNet-Lite0 with their packaged ImageNet weights" in text
    assert "**no labels**" in text and "**predicted class**" in text and "the `book` profile." in text


def test_overridden_counts_still_say_paper():
    params, defaults = params_of("opticam", "paper", {"images": {"n": 8}, "optimisation": {"images": 8},
                                                      "insertion_deletion": {"images": 8},
                                                      "protocol": {"images": 8}})
    text = opticam_text.protocol(params, "paper", defaults)
    assert "the `paper` profile with 4 parameters overridden" in text and "`images.n`" in text
    assert "8 images per model" in text


def test_liftcam_paper_profile_wording():
    params, defaults = params_of("liftcam", "paper")
    text = liftcam_text.setup(params, "paper", defaults)
    vgg = next(line for line in text.splitlines() if line.startswith("* VGG16"))
    resnet = next(line for line in text.splitlines() if line.startswith("* ResNet-50"))
    assert "`features.29`" in vgg and "**non-linear**" in vgg and "linear**;" not in vgg.replace("non-linear", "")
    assert "**linear**" in resnet and "exact by construction" in resnet
    assert "The images carry labels" in text and "no labels" not in text
    deviations = liftcam_text.deviations(params, "paper", defaults)
    assert "The paper's networks, VGG16 and ResNet-50" in deviations and "At the `paper` profile" in deviations


def test_afmi_paper_profile_wording():
    params, _ = params_of("afmi", "paper")
    images = afmi_text.images_sentence(params)
    assert "labelled by" in images and "no labels" not in images
    layers = afmi_text.layers(params)
    assert "`last` on VGG16: `features.29`" in layers and "the path integral matters" in layers
    assert "`last` on ResNet-50: `layer4`" in layers and "one integration step is exact" in layers
    assert "ResNet-50 and VGG16 on 2,000 images" in afmi_text.data_deviation(params)


@pytest.mark.parametrize("profile", ["smoke", "book"])
def test_afmi_small_profiles_say_the_photos_have_no_labels(profile):
    params, _ = params_of("afmi", profile)
    assert "**no labels**" in afmi_text.images_sentence(params)
    assert "MobileNetV2" in afmi_text.data_deviation(params)


def test_a_parameter_file_of_the_readers_own_is_named_as_such():
    params, _ = params_of("opticam", "book")
    assert "of the reader's own" in kit.scale_phrase(params, "mine", None)
    assert kit.profile_defaults(registry.get("opticam"), "no-such-profile") is None


def test_prose_modules_do_not_change_cache_keys(tmp_path):
    """Editing a sentence must not recompute a chapter: setup_text modules are outside the source hash."""
    import shutil

    from camrepro import cache

    package = Path(cache.__file__).parent
    copy = tmp_path / "camrepro"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = cache.source_hash(copy)
    (copy / "experiments" / "opticam" / "setup_text.py").write_text("# another sentence\n")
    assert cache.source_hash(copy) == before
    (copy / "experiments" / "opticam" / "compute.py").write_text("# another computation\n")
    assert cache.source_hash(copy) != before
