"""The lficam chapter's parameters: one schema, its defaults (the book profile's scale), its checks.

Sections: ``data`` (canvas Fashion-MNIST, or the reader's ImageFolder trees at the paper profile), ``model``
(the backbone all three networks share, and the FIN's depth), ``train`` (one training run's
hyper-parameters), ``seeds`` (one run per network and seed: the units of the accuracy and quality claims),
``stability`` (hyper-parameter settings, each an override of ``train``; setting i is trained with seed i),
``evaluation`` (test images scored per network and seed), ``examples``, ``throughput`` and ``workers``.
"""

from __future__ import annotations

from collections.abc import Mapping

from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.schema import Param, Schema
from camrepro.models.resnet_cifar import ResNetConfig
from camrepro.training import AUGMENTATIONS, SCHEDULES, TrainConfig

CHAPTER = "lficam"
KINDS = ("plain", "abn", "lficam")
ATTENTION_KINDS = ("abn", "lficam")
LABELS = {"plain": "ResNet + Grad-CAM", "abn": "ABN", "lficam": "LFI-CAM"}
DATA_SOURCES = ("canvas", "image-folder")
CANVAS_MEAN, CANVAS_STD = 0.5, 0.25   # a fixed normalisation for the grey canvases (no statistics are fitted)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _folders_given(data: dict[str, object]) -> str | None:
    if data["source"] == "image-folder" and not (data["train_root"] and data["test_root"]):
        return ("source 'image-folder' needs train_root and test_root (ImageFolder trees: "
                "<root>/<class>/<image>)")
    return None


DATA = Schema("data", {
    "source": Param("canvas", str, choices=DATA_SOURCES),
    "size": Param(40, int, minimum=1),
    "n_train": Param(4000, int, minimum=1),
    "n_test": Param(1000, int, minimum=1),
    "n_clutter": Param(4, int, minimum=0),
    "clutter_size": Param(8, int, minimum=1),
    "noise": Param(0.1, float, minimum=0, maximum=1),
    "seed": Param(0, int, minimum=0),
    # image-folder source (the paper profile): the reader's ImageFolder trees
    "train_root": Param(None, str, nullable=True),
    "test_root": Param(None, str, nullable=True),
    "image_size": Param(32, int, minimum=1),
    "mean": Param(None, list, item=float, nullable=True),
    "std": Param(None, list, item=float, minimum=0, nullable=True),
}, check=_folders_given)

MODEL = Schema("model", {
    "widths": Param([8, 16, 32], list, item=int, minimum=1, min_length=1),
    "blocks": Param([1, 1, 1], list, item=int, minimum=1, min_length=1),
    "block": Param("basic", str, choices=("basic", "bottleneck")),
    "stem_kernel": Param(3, int, choices=(3, 5, 7)),
    "stem_stride": Param(1, int, choices=(1, 2)),
    "stem_pool": Param(False, bool),
    "fin_blocks": Param(4, int, minimum=1),
}, check=lambda m: None if len(m["widths"]) == len(m["blocks"]) else
   f"widths {m['widths']} and blocks {m['blocks']} must have the same length")

TRAIN = Schema("train", {
    "epochs": Param(3, int, minimum=1),
    "batch_size": Param(64, int, minimum=1),
    "lr": Param(0.2, float, minimum=1e-12),
    "momentum": Param(0.9, float, minimum=0),
    "weight_decay": Param(5e-4, float, minimum=0),
    "nesterov": Param(False, bool),
    "schedule": Param("cosine", str, choices=SCHEDULES),
    "milestones": Param([], list, item=int, minimum=1),
    "gamma": Param(0.1, float, minimum=0),
    "warmup_epochs": Param(0.5, float, minimum=0),
    "augment": Param("none", str, choices=AUGMENTATIONS),
    "pad": Param(4, int, minimum=0),
})


def _distinct_seeds(seeds: list[int]) -> str | None:
    return None if len(set(seeds)) == len(seeds) else f"seeds must be distinct, got {seeds}"


STABILITY = Schema("stability", {
    "settings": Param([{}, {"lr": 0.1}, {"batch_size": 128}, {"weight_decay": 1e-4}], list, item=dict,
                      min_length=2, doc="overrides of train; setting i is trained with seed i"),
    "threshold": Param(0.5, float, minimum=0, maximum=1, doc="a map pixel is 'on' where its value exceeds it"),
    "n_images": Param(300, int, minimum=1),
})

EVALUATION = Schema("evaluation", {
    "n_images": Param(100, int, minimum=1),
    "iou_threshold": Param(0.5, float, minimum=0, maximum=1),
    "batch_size": Param(128, int, minimum=1),
})

THROUGHPUT = Schema("throughput", {
    "batch_size": Param(64, int, minimum=1),
    "steps": Param(6, int, minimum=1),
    "warmup": Param(2, int, minimum=0),
})


def _check(p: dict[str, object]) -> str | None:
    """Cross-section checks: every stability setting is a valid, distinct override of ``train``."""
    settings = p["stability"]["settings"]
    for i, setting in enumerate(settings):
        if "seed" in setting:
            return f"stability.settings[{i}] must not set 'seed': setting i is trained with seed i"
        try:
            train_config(p, 0, setting)
        except (TypeError, ValueError) as error:
            return f"stability.settings[{i}]: {error}"
    if len({str(sorted(s.items())) for s in settings}) != len(settings):
        return f"stability.settings must be distinct, got {settings}"
    data = p["data"]
    if data["source"] == "canvas":
        for section in ("evaluation", "stability"):
            if p[section]["n_images"] > data["n_test"]:
                return (f"{section}.n_images = {p[section]['n_images']} exceeds data.n_test = "
                        f"{data['n_test']}")
    try:
        backbone_config(p, num_classes=10, in_channels=1 if data["source"] == "canvas" else 3)
    except ValueError as error:
        return str(error)
    return None


SCHEMA = Schema(CHAPTER, {
    "data": DATA,
    "model": MODEL,
    "train": TRAIN,
    "seeds": Param([0, 1, 2, 3, 4], list, item=int, minimum=0, min_length=1, check=_distinct_seeds),
    "stability": STABILITY,
    "evaluation": EVALUATION,
    "examples": Param(6, int, minimum=0),
    "throughput": THROUGHPUT,
    "workers": Param(0, int, minimum=0),
}, check=_check)


def train_config(p: Mapping[str, object], seed: int,
                 override: Mapping[str, object] | None = None) -> TrainConfig:
    """The configuration of one training run: ``train`` with ``override`` on top, and ``seed``."""
    values = TRAIN.resolve(p["train"], dict(override or {}), where=f"{CHAPTER}.train")
    return TrainConfig.from_dict({**values, "seed": seed})


def backbone_config(p: Mapping[str, object], num_classes: int, in_channels: int) -> ResNetConfig:
    """The backbone the three networks share, normalised for the chapter's data."""
    model, data = p["model"], p["data"]
    if in_channels == 1:
        mean, std = (CANVAS_MEAN,), (CANVAS_STD,)
    else:
        mean, std = tuple(data["mean"] or CIFAR_MEAN), tuple(data["std"] or CIFAR_STD)
    return ResNetConfig(num_classes=num_classes, in_channels=in_channels, widths=tuple(model["widths"]),
                        blocks=tuple(model["blocks"]), block=model["block"], stem_kernel=model["stem_kernel"],
                        stem_stride=model["stem_stride"], stem_pool=model["stem_pool"], mean=mean, std=std)


def network_spec(kind: str, p: Mapping[str, object], num_classes: int, in_channels: int) -> dict[str, object]:
    """The spec :func:`camrepro.training.build_network` builds ``kind`` from (part of its training's key)."""
    if kind not in KINDS:
        raise ValueError(f"unknown network {kind!r}; expected one of {KINDS}")
    spec: dict[str, object] = {"kind": kind, "config": backbone_config(p, num_classes, in_channels).to_dict()}
    if kind == "lficam":
        spec["fin_blocks"] = p["model"]["fin_blocks"]
    return spec


def inputs(p: Mapping[str, object]) -> list[kit_inputs.Input]:
    """The reader's ImageFolder trees (none for the generated canvas data)."""
    data = p["data"]
    if data["source"] == "canvas":
        return []
    hint = "put one sub-folder per class in it (<root>/<class>/<image>), the same classes in both trees"
    return [kit_inputs.folder_input("data.train_root", data["train_root"], hint),
            kit_inputs.folder_input("data.test_root", data["test_root"], hint)]


def data_params(p: Mapping[str, object]) -> dict[str, object]:
    """The part of the parameters that defines the data (a component of every training's cache key): for the
    reader's folders, their content fingerprints too (:mod:`camrepro.experiments.kit.inputs`), so swapped
    training images retrain."""
    data = p["data"]
    if data["source"] == "canvas":
        keys = ("source", "size", "n_train", "n_test", "n_clutter", "clutter_size", "noise", "seed")
    else:
        keys = ("source", "train_root", "test_root", "image_size")
    return kit_inputs.keyed({k: data[k] for k in keys}, kit_inputs.contents(CHAPTER, inputs(p)))
