"""The LIFT-CAM chapter's prose that depends on its parameters: the networks and layers explained (and whether
each layer's tail is linear), the images, and the deviations on networks, data and scale."""

from __future__ import annotations

from collections.abc import Mapping

from camrepro.experiments.kit import setup_text as kit
from camrepro.experiments.liftcam.params import configurations, layer_of

PAPER_MODELS = ("vgg16", "resnet50")


def setup(params: Mapping[str, object], profile: str, defaults: Mapping[str, object] | None) -> str:
    """Which layer of which network this build explains, what follows each layer, and on which images."""
    items = []
    for model, kind in configurations(dict(params)):
        layer = layer_of(model, kind)
        linear = kit.tail_is_linear(model, layer)
        consequence = ("the SHAP values are exactly w_ck · mean(A_k) and LIFT-CAM is exact by construction"
                       if linear
                       else "DeepLIFT is an approximation of the SHAP values")
        items.append(f"* {kit.model_name(model)} at `{layer}` ({kind}): {kit.tail_phrase(model, layer)}; "
                     f"{consequence}.")
    images = params["images"]
    return (f"**Setup of this build ({kit.scale_phrase(params, profile, defaults)}).** "
            f"{kit.weights_phrase(list(params['models']))}, explained at:\n\n" + "\n".join(items)
            + f"\n\n**Images.** {kit.images_phrase(images)}. {kit.target_sentence(images)}")


def deviations(params: Mapping[str, object], profile: str, defaults: Mapping[str, object] | None) -> str:
    """The deviations' bullets on networks and data, and on scale."""
    names, images = list(params["models"]), params["images"]
    if set(names) == set(PAPER_MODELS) and images["source"] == "imagenet-val":
        data = (f"* **Networks and data.** The paper's networks, VGG16 and ResNet-50, on {kit.images_phrase(images)}; "
                "the predicted class is the target.")
    else:
        data = (f"* **Networks and data.** {kit.model_list(names)} on {kit.images_phrase(images)} "
                f"({'labelled, but ' if kit.has_labels(images) else 'without labels: '}the predicted class is the "
                "target), instead of VGG16 and ResNet-50 on the ImageNet validation set; the `paper` profile runs "
                "the latter when the reader provides the weights and the images.")
    scale = (f"* **Scale.** At {kit.scale_phrase(params, profile, defaults)} the numbers rest on the photos of the "
             "scale table above, Score-CAM and LIME-CAM on the counts it gives for them; every claim gives its n "
             "and interval, and an undecided one the n that would decide it.")
    return data + "\n" + scale
