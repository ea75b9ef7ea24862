"""The opticam chapter's parameters: one schema, the defaults (the book profile's scale) in one place."""

from __future__ import annotations

from camrepro import models
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit.images import image_schema
from camrepro.experiments.schema import Param, Schema
from camrepro.methods.opti_cam import NORMALIZATIONS, OBJECTIVES

OPTI = "opti-cam"
BASELINES = ("fake-cam", "cam", "grad-cam", "grad-cam++", "xgrad-cam", "layer-cam", "ablation-cam", "score-cam")
TARGETS = ("predicted", "label")
# the methods of the paper's Table A.14, the ones also scored with the mask on the normalised image
PROTOCOL_METHODS = ("grad-cam", "score-cam", OPTI)

MODEL_NAMES = {"mobilenet_v2": "MobileNetV2", "efficientnet_lite0": "EfficientNet-Lite0", "resnet50": "ResNet50",
               "vgg16": "VGG16"}
# our method names → the names in the paper's tables
PAPER_NAMES = {"fake-cam": "Fake-CAM", "cam": "CAM", "grad-cam": "Grad-CAM", "grad-cam++": "Grad-CAM++",
               "xgrad-cam": "XGrad-CAM", "layer-cam": "Layer-CAM", "ablation-cam": "Ablation-CAM",
               "score-cam": "Score-CAM", OPTI: "Opti-CAM"}


def _known_methods(names: object) -> str | None:
    names = list(names)
    unknown = sorted(set(names) - set(BASELINES) - {OPTI})
    if not unknown:
        return None
    return f"unknown method(s) {unknown}; the chapter's methods are {sorted([*BASELINES, OPTI])}"


def _baselines_ok(names: list[str]) -> str | None:
    if OPTI in names:
        return "must not list 'opti-cam': the chapter runs it itself"
    return _known_methods(names)


def _per_method_counts(value: dict) -> str | None:
    problem = _known_methods(value)
    if problem:
        return problem
    bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    return f"image counts must be ints ≥ 0, got {bad}" if bad else None


def _method_options_ok(value: dict) -> str | None:
    problem = _known_methods(value)
    if problem:
        return problem
    bad = sorted(k for k, v in value.items() if not isinstance(v, dict))
    return f"the options of {bad} must be mappings" if bad else None


def _layers_ok(value: dict) -> str | None:
    unknown = sorted(set(value) - set(models.MODELS))
    if unknown:
        return f"unknown model(s) {unknown}; expected some of {sorted(models.MODELS)}"
    bad = sorted(k for k, v in value.items() if not isinstance(v, str))
    return f"the layers of {bad} must be module names (strings)" if bad else None


def _whole(p: dict[str, object]) -> str | None:
    iterations = p["optimisation"]["iterations"]
    beyond = [t for t in p["snapshots"] if t > iterations]
    if beyond:
        return f"snapshots {beyond} are beyond optimisation.iterations ({iterations})"
    if p["targets"] == "label" and p["images"]["source"] not in ("imagenet-val", "image-folder"):
        return f"targets 'label' needs labelled images; source {p['images']['source']!r} has none"
    if p["ablation"]["iterations"] > iterations:
        return (f"ablation.iterations ({p['ablation']['iterations']}) is beyond optimisation.iterations "
                f"({iterations})")
    return None


SCHEMA = Schema("opticam", {
    "models": Param(["mobilenet_v2", "efficientnet_lite0"], list, item=str, choices=tuple(models.MODELS),
                    min_length=1, doc="the networks explained"),
    "layers": Param({}, dict, check=_layers_ok,
                    doc="model → layer; default: the model's last convolutional layer"),
    "images": image_schema(n=16),
    "targets": Param("predicted", str, choices=TARGETS, doc="the class each map explains"),
    "baselines": Param(list(BASELINES), list, item=str, check=_baselines_ok),
    "method_images": Param({"score-cam": 4}, dict, check=_per_method_counts,
                           doc="at most this many of the images for a method (0: left out)"),
    "method_options": Param({}, dict, check=_method_options_ok,
                            doc="method → keyword options (options other than the defaults give other maps)"),
    "optimisation": Schema("optimisation", {
        "images": Param(16, int, minimum=1, doc="Opti-CAM's photos per model (the first of the images)"),
        "iterations": Param(100, int, minimum=1),
        "lr": Param(0.1, float, minimum=1e-12),
    }),
    "snapshots": Param([0, 10, 25, 50, 75, 100], list, item=int, minimum=0, min_length=1,
                       doc="iterations at which Opti-CAM's map is scored (AG against iterations)"),
    "insertion_deletion": Schema("insertion_deletion", {
        "methods": Param(["fake-cam", "grad-cam", "score-cam", OPTI], list, item=str, check=_known_methods),
        "images": Param(16, int, minimum=0),
        "steps": Param(8, int, minimum=1),
    }),
    "ablation": Schema("ablation", {
        "model": Param("mobilenet_v2", str, choices=tuple(models.MODELS)),
        "images": Param(8, int, minimum=0),
        "iterations": Param(25, int, minimum=1),
        "objectives": Param(list(OBJECTIVES), list, item=str, choices=OBJECTIVES, min_length=1),
        "normalizations": Param(list(NORMALIZATIONS), list, item=str, choices=NORMALIZATIONS, min_length=1),
    }),
    "protocol": Schema("protocol", {
        "model": Param("mobilenet_v2", str, choices=tuple(models.MODELS)),
        "images": Param(4, int, minimum=0, doc="photos on which Opti-CAM is re-optimised in normalised space"),
    }),
    "timing": Schema("timing", {
        "model": Param("mobilenet_v2", str, choices=tuple(models.MODELS)),
        "rounds": Param(3, int, minimum=0, doc="interleaved rounds (Opti-CAM, Score-CAM, forward) on one photo"),
    }),
    "examples": Param(4, int, minimum=0),
    "batch_size": Param(8, int, minimum=1),
    "weights": kit_inputs.weights_param(),
}, check=_whole)


def models_used(params: dict[str, object]) -> list[str]:
    """Every network a unit loads: the models, and the ablation, protocol and timing models when they run."""
    used = list(params["models"])
    if params["ablation"]["images"]:
        used.append(params["ablation"]["model"])
    if params["protocol"]["images"]:
        used.append(params["protocol"]["model"])
    if params["timing"]["rounds"] and "score-cam" in params["baselines"]:
        used.append(params["timing"]["model"])
    return list(dict.fromkeys(used))


def inputs(params: dict[str, object]) -> list[kit_inputs.Input]:
    """The files the chapter reads that the reader provides (checked, and keyed by content, before
    computing)."""
    return kit_inputs.image_inputs(params["images"]) + kit_inputs.weight_inputs(models_used(params), params)


def layer(params: dict[str, object], model_name: str) -> str:
    """The layer explained on ``model_name``."""
    return params["layers"].get(model_name, models.MODELS[model_name].default_layer)


def opticam_options(params: dict[str, object], **extra: object) -> dict[str, object]:
    """Opti-CAM's options that differ from the method's defaults (so that the default run's maps share one
    map-store key with every other chapter's)."""
    from camrepro.methods.opti_cam import OptiCAM
    import inspect

    defaults = {k: v.default for k, v in inspect.signature(OptiCAM.__init__).parameters.items()
                if v.default is not inspect.Parameter.empty}
    wanted = {"iterations": params["optimisation"]["iterations"], "lr": params["optimisation"]["lr"], **extra}
    return {k: v for k, v in wanted.items() if defaults.get(k, object()) != v}
