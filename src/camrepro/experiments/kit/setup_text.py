"""Phrases of a chapter's prose that depend on its parameters: the networks, the images and their targets, the
tail after an explained layer, and the profile a build ran at. Each chapter's ``setup_text`` module assembles
its paragraphs from these, so a page describes the setup it ran, whatever the profile or overrides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from camrepro import models

DISPLAY_NAMES = {"mobilenet_v2": "MobileNetV2", "efficientnet_lite0": "EfficientNet-Lite0",
                 "resnet50": "ResNet-50", "vgg16": "VGG16"}
PACKAGED_PHOTOS = {
    "ai-benchmark": "photos of ImageNet classes packaged with `ai-benchmark`",
    "skimage": "sample photos packaged with scikit-image",
    "all": "photos packaged with `ai-benchmark` and scikit-image",
}


def model_name(name: str) -> str:
    return DISPLAY_NAMES.get(name, name)


def listing(items: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def model_list(names: Sequence[str]) -> str:
    return listing([model_name(n) for n in names])


def weights_phrase(names: Sequence[str]) -> str:
    """Where the networks' weights come from: packaged with the compendium, or provided by the reader."""
    packaged = [n for n in names if models.MODELS[n].package]
    provided = [n for n in names if not models.MODELS[n].package]
    parts = []
    if packaged:
        parts.append(f"{model_list(packaged)} with {'its' if len(packaged) == 1 else 'their'} packaged ImageNet "
                     "weights")
    if provided:
        parts.append(f"{model_list(provided)} with the torchvision ImageNet weights the reader provides "
                     "(`$CAMREPRO_WEIGHTS`)")
    return listing(parts)


def has_labels(images: Mapping[str, object]) -> bool:
    """Whether the image source carries a class label per image (the packaged photos do not)."""
    return images["source"] in ("imagenet-val", "image-folder")


def images_phrase(images: Mapping[str, object]) -> str:
    """``"16 photos of ImageNet classes packaged with `ai-benchmark`, at 224 px"`` or the reader's folder."""
    n, size, source = images["n"], images["size"], images["source"]
    if source == "imagenet-val":
        what = (f"{n:,} images of the ImageNet validation folder `{images['root']}`, labelled by "
                f"`{images['labels']}`")
    elif source == "image-folder":
        what = f"{n:,} images of the class folders under `{images['root']}`"
    else:
        what = f"{n:,} {PACKAGED_PHOTOS.get(str(source), str(source))}"
    return f"{what}, at {size} px"


def target_sentence(images: Mapping[str, object], targets: str = "predicted") -> str:
    """What each map explains, and why, given the images' labels and the ``targets`` parameter."""
    if targets == "label":
        return "The target of every map is the image's **ground-truth class**, as in the paper's main tables."
    if has_labels(images):
        return ("The images carry labels, but the target of every map is the network's **predicted class** "
                "(the labels are not used for the maps).")
    return "They carry **no labels**, so the target of every map is the network's **predicted class**."


def tail_is_linear(model: str, layer: str) -> bool:
    """Whether the network after ``layer`` is linear up to the logits (global average pooling and a fully
    connected layer). That holds for a model's last convolutional layer, except where that layer is also its
    non-linear-tail layer (VGG16's ``features.29``: max-pooling and a classifier with ReLUs follow)."""
    spec = models.MODELS[model]
    return layer == spec.default_layer and spec.default_layer != spec.nonlinear_tail_layer


def tail_phrase(model: str, layer: str) -> str:
    if tail_is_linear(model, layer):
        return "its tail is global average pooling and a fully connected layer: **linear**"
    if model == "vgg16":
        return "its tail is max-pooling and the classifier's fully connected layers with ReLUs: **non-linear**"
    return "its tail holds a 1×1 convolution, batch-norm and ReLU6 before the pooling: **non-linear**"


def overridden(params: Mapping[str, object], profile_params: Mapping[str, object], prefix: str = "") -> list[str]:
    """The dotted names of the parameters whose value differs from the profile's own."""
    out = []
    for key, value in params.items():
        theirs = profile_params.get(key)
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(theirs, Mapping):
            out += overridden(value, theirs, name + ".")
        elif value != theirs:
            out.append(name)
    return out


def profile_phrase(profile: str, changed: Sequence[str]) -> str:
    """``"the `paper` profile"``, with the parameters set apart from it, if any."""
    text = f"the `{profile}` profile"
    if changed:
        shown = ", ".join(f"`{c}`" for c in changed[:8]) + (", …" if len(changed) > 8 else "")
        text += f" with {len(changed)} parameter{'s' if len(changed) > 1 else ''} overridden ({shown})"
    return text


def profile_defaults(chapter, profile: str) -> dict[str, object] | None:
    """The chapter's parameters at ``profile`` without overrides; None when ``profile`` names no file under
    ``notebooks/params/`` (a reader's own parameter file), where nothing can be said to be overridden."""
    from camrepro.notebooks import BookLayout, available_profiles

    if profile not in available_profiles(BookLayout.at()):
        return None
    return chapter.params(profile)


def scale_phrase(params: Mapping[str, object], profile: str, defaults: Mapping[str, object] | None) -> str:
    if defaults is None:
        return f"a parameter file of the reader's own (profile `{profile}`)"
    return profile_phrase(profile, overridden(params, defaults))
