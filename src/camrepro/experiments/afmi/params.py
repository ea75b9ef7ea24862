"""The A-FMI chapter's parameters: one schema, the defaults in one place, and the names they map to.

Sections: ``images`` (the photos, shared with the other chapters at the book profile), ``references`` (the
reference images x′ every reference-based method is given), ``method_options`` (options of each method, the
same in every experiment so that equal maps are shared through the map store), then one section per
experiment: ``insensitivity``, ``faithfulness``, ``grids`` and ``saturation``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from camrepro import methods, models
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit.grids import grid_problem
from camrepro.experiments.kit.images import count_problem, image_schema, packaged_names
from camrepro.experiments.schema import Param, Schema
from camrepro.methods.references import REFERENCE_NAMES

CHAPTER = "afmi"
PAPER = "A-FMI"
SOURCE = "arXiv:2104.05527, abstract"

OTHER_PHOTO = "photo"
"""The reference name that stands for another photo (``references.other_photo``), shared by every image."""
REFERENCE_CHOICES = (*REFERENCE_NAMES, OTHER_PHOTO)
REFERENCE_METHODS = ("a-fmi", "integrated-gradients", "deeplift", "lift-cam")
"""Methods that take a ``reference`` option (and ``blur_sigma``, ``noise_seed``)."""
FAITHFULNESS_METHODS = ("a-fmi", "grad-cam", "lift-cam", "integrated-gradients", "deeplift")
LAYER_CHOICES = ("last", "nonlinear")
INPUT = "input"
"""The ``layer`` label of the pixel attributions, which explain the input rather than a layer."""


def _distinct(value: object) -> str | None:
    return None if len(set(value)) == len(value) else f"lists an item twice: {value!r}"


def _with_afmi(value: object) -> str | None:
    return _distinct(value) or (None if "a-fmi" in value else "must include 'a-fmi' (this chapter's method)")


def _options_check(value: object) -> str | None:
    for name, options in value.items():
        if name not in methods.REGISTRY:
            return f"names no method {name!r}; the methods are {sorted(methods.REGISTRY)}"
        if not isinstance(options, Mapping):
            return f"{name}: options must be a mapping, got {options!r}"
        if "reference" in options:
            return f"{name}: the reference is set by the chapter (sections references / faithfulness)"
    return None


def _saturation_check(section: dict[str, object]) -> str | None:
    if section["images"] > section["pool"]:
        return f"images ({section['images']}) cannot exceed pool ({section['pool']})"
    return _distinct(section["temperatures"])


SCHEMA = Schema(CHAPTER, {
    "models": Param(["mobilenet_v2", "efficientnet_lite0"], list, item=str, choices=tuple(models.MODELS),
                    min_length=1, check=_distinct),
    # the first layer choice is the one every claim reads; the tables give the others too
    "layers": Param(["last", "nonlinear"], list, item=str, choices=LAYER_CHOICES, min_length=1,
                    check=_distinct),
    "images": image_schema(n=16),
    "chunk": Param(8, int, minimum=1),
    "method_options": Param({"a-fmi": {"steps": 16}}, dict, check=_options_check),
    "references": Schema("references", {
        "names": Param(list(REFERENCE_CHOICES), list, item=str, choices=REFERENCE_CHOICES, min_length=2,
                       check=_distinct),
        "other_photo": Param("skimage/coffee", str),
        "blur_sigma": Param(10.0, float, minimum=1e-6),
        "noise_seed": Param(0, int, minimum=0),
    }),
    "insensitivity": Schema("insensitivity", {
        "images": Param(8, int, minimum=1),            # the first m photos of ``images``
        "methods": Param(list(REFERENCE_METHODS), list, item=str, choices=REFERENCE_METHODS,
                         check=_with_afmi),
        "method_options": Param({}, dict, check=_options_check),   # over the chapter's, for this experiment
        "topk_fraction": Param(0.1, float, minimum=1e-6, maximum=1.0),
        "pooled_size": Param(7, int, minimum=1),
    }),
    "faithfulness": Schema("faithfulness", {
        "methods": Param(list(FAITHFULNESS_METHODS), list, item=str, choices=FAITHFULNESS_METHODS,
                         check=_with_afmi),
        "reference": Param("zeros", str, choices=REFERENCE_CHOICES),
        "insertion_steps": Param(10, int, minimum=1),
    }),
    "grids": Schema("grids", {
        "n": Param(8, int, minimum=1),
        "methods": Param(["a-fmi", "grad-cam", "lift-cam"], list, item=str, choices=FAITHFULNESS_METHODS,
                         check=_with_afmi),
        "seed": Param(0, int, minimum=0),
    }),
    "saturation": Schema("saturation", {
        "models": Param(["mobilenet_v2"], list, item=str, choices=tuple(models.MODELS), min_length=1,
                        check=_distinct),
        "pool": Param(48, int, minimum=1),            # photos drawn with images.seed; the most confident kept
        "images": Param(8, int, minimum=1),
        "temperatures": Param([1.0, 2.0, 4.0, 8.0, 16.0], list, item=float, minimum=1e-6, min_length=1),
        "reference": Param("zeros", str, choices=REFERENCE_CHOICES),
        "steps": Param(64, int, minimum=1),
        "deletion_steps": Param(10, int, minimum=1),
    }, check=_saturation_check),
    "weights": kit_inputs.weights_param(),
}, check=lambda p: _whole(p))


def _whole(p: dict[str, object]) -> str | None:
    """What would fail only after minutes of computing: checked when the parameters are resolved."""
    other = p["references"]["other_photo"]
    source = other.split("/", 1)[0]
    if OTHER_PHOTO in p["references"]["names"] or p["faithfulness"]["reference"] == OTHER_PHOTO:
        names = packaged_names(source) if source in ("ai-benchmark", "skimage") else []
        if names is not None and other not in names:
            return (f"references.other_photo {other!r} is not a packaged photo; name one as "
                    "'skimage/<name>' or 'ai-benchmark/<number>'")
    return (grid_problem(p["images"]["n"], p["grids"]["n"])
            or count_problem(p["images"], p["saturation"]["pool"], "saturation.pool"))


def inputs(params: Mapping[str, object]) -> list[kit_inputs.Input]:
    """The files the chapter reads that the reader provides (checked, and keyed by content, before
    computing)."""
    used = list(dict.fromkeys([*params["models"], *params["saturation"]["models"]]))
    return kit_inputs.image_inputs(params["images"]) + kit_inputs.weight_inputs(used, params)


def layer_for(model_name: str, choice: str) -> str:
    """The explained layer: ``"last"`` = the last convolution (a linear tail: pool + fc), ``"nonlinear"`` =
    the block before it (its tail holds a 1×1 convolution, batch-norm and ReLU6 before the pool)."""
    spec = models.MODELS[model_name]
    return spec.default_layer if choice == "last" else spec.nonlinear_tail_layer


def method_layers(name: str, choices: list[str]) -> list[str]:
    """The layer choices method ``name`` runs at: each of ``choices`` for a method that explains a layer,
    ``[INPUT]`` for a pixel attribution."""
    return list(choices) if methods.get(name).needs_layer else [INPUT]


def method_options(name: str, reference: str | None, params: Mapping[str, object],
                   section: Mapping[str, object] | None = None, other: torch.Tensor | None = None
                   ) -> tuple[dict[str, object], dict[str, object]]:
    """(constructor options, map-store key options) of method ``name`` under the reference called
    ``reference`` (None: the method's own default, e.g. LIFT-CAM's all-zero activations).

    The chapter's ``method_options`` for the method, then the section's (``section["method_options"]``), then
    the reference. The ``"zeros"`` reference is every reference method's default, so it adds no option and
    its maps share a key with the other chapters' default maps; ``"photo"`` passes the image tensor
    ``other`` to the method and its name to the key.
    """
    base = dict(params["method_options"].get(name, {}))
    if section is not None:
        base.update(section.get("method_options", {}).get(name, {}))
    constructor, key = dict(base), dict(base)
    refs = params["references"]
    if name in REFERENCE_METHODS and reference is not None:
        if name == "lift-cam" or reference != "zeros":
            constructor["reference"] = other if reference == OTHER_PHOTO else reference
            key["reference"] = (f"{OTHER_PHOTO}:{refs['other_photo']}" if reference == OTHER_PHOTO
                                else reference)
        if reference == "blur":
            constructor["blur_sigma"] = key["blur_sigma"] = float(refs["blur_sigma"])
        elif reference == "noise":
            constructor["noise_seed"] = key["noise_seed"] = int(refs["noise_seed"])
    return constructor, key
