"""The A-FMI chapter's prose that depends on its parameters: the images and targets, the explained layers and
their tails, and the data-and-models deviation."""

from __future__ import annotations

from collections.abc import Mapping

from camrepro.experiments.afmi.params import layer_for
from camrepro.experiments.kit import setup_text as kit

PAPER_MODELS = ("resnet50", "vgg16")
_CHOICES = {"last": "the last convolution", "nonlinear": "the block before the last convolution"}


def images_sentence(params: Mapping[str, object]) -> str:
    images = params["images"]
    return f"{kit.images_phrase(images)}. {kit.target_sentence(images)}"


def layers(params: Mapping[str, object]) -> str:
    """The paragraph on the layer choices: which layer each choice is on each network, and its tail."""
    rows = []
    for choice in params["layers"]:
        for model in params["models"]:
            layer = layer_for(model, choice)
            linear = kit.tail_is_linear(model, layer)
            extra = ("; ḡ is constant, one integration step is exact and φ_k = w_ck · mean(ΔA_k)" if linear
                     else "; the path integral matters")
            rows.append(f"* `{choice}` on {kit.model_name(model)}: `{layer}`, {_CHOICES.get(choice, choice)}; "
                        f"{kit.tail_phrase(model, layer)}{extra}.")
    return (f"**Layers.** A-FMI and LIFT-CAM explain a layer; the insensitivity and grid experiments run them at "
            f"each choice of `layers`, the claims and the faithfulness experiment at the first "
            f"(`{params['layers'][0]}`):\n\n" + "\n".join(rows))


def data_deviation(params: Mapping[str, object]) -> str:
    names, images = list(params["models"]), params["images"]
    if set(names) == set(PAPER_MODELS) and images["source"] == "imagenet-val":
        return (f"- **Data and models**: ResNet-50 and VGG16 on {kit.images_phrase(images)}; "
                "the predicted class is the target (the abstract does not say which class the paper explains).")
    return (f"- **Data and models**: the paper evaluates on ImageNet with its own networks; here, "
            f"{kit.model_list(names)} on {kit.images_phrase(images)} "
            f"({'labelled, but ' if kit.has_labels(images) else 'no labels: '}the predicted class is the target); "
            "the `paper` profile runs ResNet-50 and VGG16 on ImageNet validation images the reader provides.")
