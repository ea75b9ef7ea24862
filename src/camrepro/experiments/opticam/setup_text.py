"""The Opti-CAM chapter's prose that depends on its parameters: the protocol paragraph (networks, images,
targets), what the profile reduces, and the networks-and-data deviation."""

from __future__ import annotations

from collections.abc import Mapping

from camrepro.experiments.kit import setup_text as kit
from camrepro.experiments.opticam.params import MODEL_NAMES, PAPER_NAMES, layer

PAPER_MODELS = ("resnet50", "vgg16")


def _photos(n: int) -> str:
    return f"{n:,} image" + ("" if n == 1 else "s")


def protocol(params: Mapping[str, object], profile: str, defaults: Mapping[str, object] | None) -> str:
    """The networks, images and targets of this build, then the list of what its scale reduces."""
    names = list(params["models"])
    layers = ", ".join(f"{MODEL_NAMES[m]} `{layer(params, m)}`" for m in names)
    paper_nets = set(names) == set(PAPER_MODELS)
    networks = (f"**Networks.** {kit.weights_phrase(names)}, explained at the last convolutional layer "
                f"({layers})" + (", the paper's networks." if paper_nets else
                                 "; the paper uses ResNet50 and VGG16, which the `paper` profile runs when the "
                                 "reader provides their weights."))
    images = params["images"]
    shared = ("" if kit.has_labels(images) else
              " The same photos as the benchmark, LIFT-CAM and A-FMI chapters, so that a map computed there is "
              "read here from the shared map store instead of being computed again.")
    target = kit.target_sentence(images, str(params["targets"]))
    if params["targets"] != "label":
        target += (" The paper's main tables use the ground-truth class; its Table A.9 gives Opti-CAM's figures "
                   "with the predicted class, which is the fairer comparison for these.")
    head = f"{networks} **Images.** {kit.images_phrase(images)}.{shared} {target}"
    return (head + "\n\n" + f"**Scale: {kit.scale_phrase(params, profile, defaults)}.** "
            + "; ".join(reductions(params)) + ".")


def reductions(params: Mapping[str, object]) -> list[str]:
    """Each count of this build next to the paper's."""
    opt, ab, idl = params["optimisation"], params["ablation"], params["insertion_deletion"]
    n_images = params["images"]["n"]
    out = [f"{_photos(n_images)} per model for the baselines' AD, AI and AG (the paper: 50,000 images)",
           f"Opti-CAM on {_photos(min(opt['images'], n_images))} per model, {opt['iterations']} Adam iterations "
           f"at learning rate {opt['lr']} (the paper: 100 at 0.1)",
           f"insertion and deletion for {', '.join(PAPER_NAMES[m] for m in idl['methods'])} on "
           f"{_photos(idl['images'])} with {idl['steps']} steps (the paper: 224 steps of 224 pixels)",
           f"the objective × normalisation ablation on {_photos(ab['images'])} of {MODEL_NAMES[ab['model']]} at "
           f"{ab['iterations']} iterations (the paper: 1,000 images of VGG16 at 100 iterations); its Mask + Range "
           "row is the main run's map after that many iterations",
           f"Opti-CAM re-optimised with the mask on the normalised image on {_photos(params['protocol']['images'])} "
           f"of {MODEL_NAMES[params['protocol']['model']]}; in normalised space only Grad-CAM, Score-CAM and "
           "Opti-CAM are scored (the methods of the paper's Table A.14)"]
    for method, n in params["method_images"].items():
        if n == 0:
            out.append(f"{PAPER_NAMES.get(method, method)} left out (one forward pass per channel of the layer)")
        else:
            out.append(f"{PAPER_NAMES.get(method, method)} on the first {_photos(n)} only (one forward pass per "
                       "channel), and compared with the others on those images only")
    rounds = params["timing"]["rounds"]
    out.append(f"speed: {rounds} interleaved round(s) of Opti-CAM, Score-CAM and a forward pass on one image of "
               f"{MODEL_NAMES[params['timing']['model']]}" if rounds else "speed: not timed at this profile")
    return out


def data_deviation(params: Mapping[str, object]) -> str:
    """The "networks and data" bullet of the deviations, for this build."""
    names, images = list(params["models"]), params["images"]
    if set(names) == set(PAPER_MODELS) and images["source"] == "imagenet-val" and params["targets"] == "label":
        scale = "" if images["n"] >= 50_000 else f" (on {images['n']:,} of its 50,000 validation images)"
        return (f"* **Networks and data**: the paper's, ResNet50 and VGG16 on ImageNet validation images with "
                f"their ground-truth class{scale}.")
    target = ("the ground-truth class" if params["targets"] == "label"
              else "the predicted class as target (Table A.9's setting)")
    return (f"* **Networks and data**: {kit.model_list(names)} on {kit.images_phrase(images)}, instead of "
            f"ResNet50 and VGG16 on the 50,000 ImageNet validation images; {target}.")
