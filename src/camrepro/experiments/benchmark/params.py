"""The benchmark chapter's parameters: one typed schema, the defaults in one place.

Every method listed in ``methods`` explains the same photos (``images``) on every network of ``models`` at
the network's default layer, with its default options unless ``method_options`` says otherwise. A method
whose cost grows with the number of channels runs on the first ``method_images[name]`` photos only (a
smaller count takes the first m of the n photos, so its maps are shared with every chapter that explains
those photos).
"""

from __future__ import annotations

from camrepro import methods, models
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit.grids import grid_problem
from camrepro.experiments.kit.images import image_schema
from camrepro.experiments.schema import Param, Schema

METHODS = ["cam", "grad-cam", "grad-cam++", "xgrad-cam", "layer-cam", "score-cam", "ablation-cam", "fake-cam",
           "integrated-gradients", "deeplift"]


def _method_names() -> list[str]:
    return list(methods.REGISTRY)


def _distinct(value: list[str]) -> str | None:
    repeated = sorted({v for v in value if value.count(v) > 1})
    return f"lists {repeated} twice" if repeated else None


def _counts(value: dict) -> str | None:
    """A mapping method → a count of photos (or grids) ≥ 0."""
    for name, count in value.items():
        if name not in _method_names():
            return f"names an unknown method {name!r}; the methods are {_method_names()}"
        if isinstance(count, bool) or not isinstance(count, int):
            return f"the count of {name!r} must be an int, got {count!r} ({type(count).__name__})"
        if count < 0:
            return f"the count of {name!r} must be ≥ 0, got {count}"
    return None


def _options(value: dict) -> str | None:
    """A mapping method → the keyword options its class is built with."""
    for name, options in value.items():
        if name not in _method_names():
            return f"names an unknown method {name!r}; the methods are {_method_names()}"
        if not isinstance(options, dict):
            return f"the options of {name!r} must be a mapping, got {options!r} ({type(options).__name__})"
    return None


def _subsets(section: dict[str, object]) -> str | None:
    listed = set(section["methods"])
    for where, names in (("randomisation.methods", section["randomisation"]["methods"]),
                         ("timing.methods", section["timing"]["methods"]),
                         ("method_options", section["method_options"])):
        extra = sorted(set(names) - listed)
        if extra:
            return f"{where} names {extra}, which are not among the chapter's methods {section['methods']}"
    return grid_problem(section["images"]["n"], section["grids"]["n"])


SCHEMA = Schema("benchmark", {
    "models": Param(["mobilenet_v2", "efficientnet_lite0"], list, item=str, choices=list(models.MODELS),
                    min_length=1, check=_distinct, doc="the networks, each explained at its default layer"),
    "methods": Param(list(METHODS), list, item=str, choices=_method_names(), min_length=1, check=_distinct,
                     doc="methods of camrepro.methods.REGISTRY, side by side"),
    "method_options": Param({}, dict, check=_options,
                            doc="method → options (default: the method's defaults)"),
    "method_images": Param({"score-cam": 4}, dict, check=_counts,
                           doc="method → photos it explains (the first m of images.n); others explain all"),
    "images": image_schema(n=16),
    "insertion_deletion": Schema("insertion_deletion", {
        "images": Param(8, int, minimum=0, doc="the first photos scored by insertion/deletion"),
        "steps": Param(8, int, minimum=1, doc="points of each curve (after the first)"),
    }),
    "grids": Schema("grids", {
        "n": Param(4, int, minimum=0, doc="2x2 grids of photos of four predicted classes"),
        "method_grids": Param({"score-cam": 0}, dict, check=_counts, doc="method → grids it explains"),
    }),
    "randomisation": Schema("randomisation", {
        "images": Param(8, int, minimum=0,
                        doc="the first photos explained on a randomly initialised network"),
        "methods": Param([m for m in METHODS if m != "score-cam"], list, item=str, choices=_method_names(),
                         check=_distinct),
        "method_images": Param({}, dict, check=_counts, doc="method → photos (fewer than images)"),
        "seed": Param(0, int, minimum=0, doc="seed of the random initialisation"),
    }),
    "timing": Schema("timing", {
        "methods": Param([m for m in METHODS if m not in ("score-cam", "integrated-gradients")], list,
                         item=str, choices=_method_names(), check=_distinct),
        "batch": Param(8, int, minimum=2, doc="the batched timing's batch size (batch 1 is always timed)"),
        "rounds": Param(3, int, minimum=1, doc="interleaved rounds (method, forward pass) per batch size"),
    }),
    "examples": Param(4, int, minimum=0, doc="photos whose maps are kept for the figure"),
    "chunk": Param(8, int, minimum=1, doc="images per explanation call"),
    "weights": kit_inputs.weights_param(),
}, check=_subsets)


def inputs(params: dict[str, object]) -> list[kit_inputs.Input]:
    """The files the chapter reads that the reader provides (checked, and keyed by content, before
    computing)."""
    return kit_inputs.image_inputs(params["images"]) + kit_inputs.weight_inputs(params["models"], params)
