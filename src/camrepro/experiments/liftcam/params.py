"""The liftcam chapter's parameters: one schema, the defaults (the book profile's scale) in one place."""

from __future__ import annotations

from camrepro import models
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit.grids import grid_problem
from camrepro.experiments.kit.images import image_schema
from camrepro.experiments.schema import Param, Schema

LIFT = "lift-cam"
# The CAMs the paper compares LIFT-CAM with: its two other SHAP approximators, then the gradient and
# score baselines. Every one has channel coefficients, so every one enters the SHAP agreement.
OTHERS = ("lrp-cam", "lime-cam", "grad-cam", "grad-cam++", "xgrad-cam", "score-cam")
METHODS = (LIFT, *OTHERS)
# layer kind → the ModelSpec attribute naming the layer: the last convolutional layer (its tail is global
# average pooling + a fully connected layer, linear, as ResNet-50's in the paper) and an earlier layer whose
# tail holds a convolution, batch-norm and ReLU6 (non-linear, as VGG16's tail in the paper)
LAYER_KINDS = {"last": "default_layer", "nonlinear": "nonlinear_tail_layer"}
# Methods that sample (one network or tail pass per channel, or a K × K solve per photo): run on the first
# few photos only, and timed against LIFT-CAM in the few "slow" rounds.
SAMPLING = ("score-cam", "lime-cam")

MODEL_NAMES = {"mobilenet_v2": "MobileNetV2", "efficientnet_lite0": "EfficientNet-Lite0",
               "resnet50": "ResNet-50", "vgg16": "VGG16"}
PAPER_NAMES = {"lift-cam": "LIFT-CAM", "lrp-cam": "LRP-CAM", "lime-cam": "LIME-CAM", "grad-cam": "Grad-CAM",
               "grad-cam++": "Grad-CAM++", "xgrad-cam": "XGrad-CAM", "score-cam": "Score-CAM"}


def layer_of(model_name: str, kind: str) -> str:
    """The layer of ``model_name`` explained for a layer kind (``"last"`` or ``"nonlinear"``)."""
    if kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {sorted(LAYER_KINDS)}")
    return getattr(models.MODELS[model_name], LAYER_KINDS[kind])


def configurations(params: dict[str, object]) -> list[tuple[str, str]]:
    """(model, layer kind) pairs to run; a kind whose layer repeats an earlier kind's layer is skipped
    (VGG16's last layer is also its non-linear-tail layer)."""
    out = []
    for model_name in params["models"]:
        seen = set()
        for kind in params["layers"]:
            layer = layer_of(model_name, kind)
            if layer not in seen:
                seen.add(layer)
                out.append((model_name, kind))
    return out


def _methods_ok(names: list[str]) -> str | None:
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        return f"unknown method(s) {unknown}; the chapter's methods are {list(METHODS)}"
    if LIFT not in names:
        return f"must list {LIFT!r}: every claim compares the other CAMs with it"
    if len(set(names)) != len(names):
        return f"lists a method twice: {names}"
    return None


def _known(value: dict) -> str | None:
    unknown = sorted(set(value) - set(METHODS))
    return f"unknown method(s) {unknown}; the chapter's methods are {list(METHODS)}" if unknown else None


def _counts_ok(value: dict) -> str | None:
    bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    return _known(value) or (f"counts must be ints ≥ 0, got {bad}" if bad else None)


def _options_ok(value: dict) -> str | None:
    bad = sorted(k for k, v in value.items() if not isinstance(v, dict))
    return _known(value) or (f"the options of {bad} must be mappings" if bad else None)


def _halves(value: int) -> str | None:
    # two halves of antithetic pairs: each half an even number of orders, at least two pairs
    if value % 4:
        return f"must be a multiple of 4 (two halves of antithetic pairs), got {value}"
    return None


def _whole(p: dict[str, object]) -> str | None:
    if p["shap"]["images"] > p["images"]["n"]:
        return f"shap.images ({p['shap']['images']}) must not exceed images.n ({p['images']['n']})"
    return grid_problem(p["images"]["n"], p["grids"]["n"])


SCHEMA = Schema("liftcam", {
    "models": Param(["mobilenet_v2", "efficientnet_lite0"], list, item=str, choices=tuple(models.MODELS),
                    min_length=1),
    "layers": Param(["last", "nonlinear"], list, item=str, choices=tuple(LAYER_KINDS), min_length=1),
    "methods": Param(list(METHODS), list, item=str, min_length=1, check=_methods_ok),
    "images": image_schema(n=16),
    # photos per method (the first m of images.n); a method not listed runs on all of them
    "method_images": Param({"score-cam": 4, "lime-cam": 4}, dict, check=_counts_ok),
    # default options (none) wherever possible, so the map store shares the maps with other chapters
    "method_options": Param({}, dict, check=_options_ok),
    # ground-truth SHAP values: Monte-Carlo permutation sampling on the first `images` photos, the
    # `permutations` orders drawn in two independent halves (seeds seed and seed + 1) so the halves'
    # agreement measures the sampling noise
    "shap": Schema("shap", {
        "images": Param(12, int, minimum=1),
        "permutations": Param(8, int, minimum=8, check=_halves),
        "seed": Param(0, int, minimum=0),
    }),
    "insertion_steps": Param(8, int, minimum=1),
    # 2×2 grids of photos of four predicted classes, each explained once per quadrant's class
    "grids": Schema("grids", {"n": Param(4, int, minimum=1), "seed": Param(0, int, minimum=0)}),
    "method_grids": Param({"score-cam": 0, "lime-cam": 0}, dict, check=_counts_ok),
    # batch-1 timing, interleaved call by call: `rounds` rounds of forward / LIFT-CAM / Grad-CAM at every
    # layer; `slow_rounds` rounds of LIFT-CAM / Score-CAM / LIME-CAM at the `slow_layer`
    "timing": Schema("timing", {
        "rounds": Param(8, int, minimum=2),
        "slow_rounds": Param(2, int, minimum=1),
        "slow_layer": Param("nonlinear", str, choices=tuple(LAYER_KINDS)),
    }),
    "chunk": Param(8, int, minimum=1),
    "examples": Param(3, int, minimum=1),
    "weights": kit_inputs.weights_param(),
}, check=_whole)


def inputs(params: dict[str, object]) -> list[kit_inputs.Input]:
    """The files the chapter reads that the reader provides (checked, and keyed by content, before
    computing)."""
    return kit_inputs.image_inputs(params["images"]) + kit_inputs.weight_inputs(params["models"], params)


def images_of(params: dict[str, object], method: str) -> int:
    """How many of the photos ``method`` runs on."""
    return min(int(params["method_images"].get(method, params["images"]["n"])), params["images"]["n"])


def grids_of(params: dict[str, object], method: str) -> int:
    """How many of the grids ``method`` explains."""
    return min(int(params["method_grids"].get(method, params["grids"]["n"])), params["grids"]["n"])


def options_of(params: dict[str, object], method: str) -> dict[str, object]:
    return dict(params["method_options"].get(method, {}))
