"""The ``lficam`` chapter: LFI-CAM trained end to end against the plain backbone and ABN.

Lee, Park, Oh, Kwak, "LFI-CAM: Learning Feature Importance for Better Visual Explanation", ICCV 2021; the
baseline is Fukui et al., "Attention Branch Network", CVPR 2019. Three networks share one backbone definition
(:mod:`camrepro.models.resnet_cifar`): the plain ResNet (explained by Grad-CAM at its last stage), ABN
(:mod:`camrepro.models.abn`) and LFI-CAM (:mod:`camrepro.models.lficam`), explained by their own attention
maps (the ``attention`` method). :func:`run` computes, all through :func:`camrepro.cache.cached`:

- one training per network and seed (``seeds``), and per network and hyper-parameter setting
  (``stability.settings``; setting i is trained with seed i, so setting 0 with the default hyper-parameters is
  the seed-0 run of the accuracy experiment and is trained once); weights are cached by content hash
  (:func:`camrepro.training.train_cached`), so a rebuild loads them;
- ``evaluation``: test accuracy of every run; attention quality of every seed's map on the first
  ``evaluation.n_images`` test images (AD/AI/AG and deletion/insertion AUCs for the predicted class,
  pixel-space masking; energy pointing game, pointing game and IoU of the thresholded map with the item's
  exact box);
  stability (mean pairwise IoU of the thresholded maps of the models trained under the different settings,
  and, for comparison, across seeds at fixed hyper-parameters); training curves; example maps;
- ``throughput``: training images per second of each network at the chapter's scale and the FIN's overhead
  over the backbone (:func:`training_throughput`).

:func:`claims` turns these into the chapter's rows of the reproducibility report, each verdict decided by the
rule in :data:`VERDICT_RULES`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from camrepro import cache, metrics
from camrepro.experiments.parameters import check_count
from camrepro.methods.attention import AttentionMap
from camrepro.methods.grad_cam import GradCAM
from camrepro.models.attention_output import LogitsOnly
from camrepro.models.resnet_cifar import ResNetConfig
from camrepro.provenance import repository_root
from camrepro.reference import published
from camrepro.training import (
    CachedTraining,
    TrainConfig,
    build_network,
    seeded,
    train_cached,
)

CHAPTER = "lficam"
PAPER = "LFI-CAM"
KINDS = ("plain", "abn", "lficam")
LABELS = {"plain": "ResNet + Grad-CAM", "abn": "ABN", "lficam": "LFI-CAM"}
DATA_SOURCES = ("canvas", "image-folder")
CANVAS_MEAN, CANVAS_STD = 0.5, 0.25   # a fixed normalisation for the grey canvases (no statistics are fitted)

# The defaults are the book profile's scale; every profile may override any of them.
DEFAULTS: dict[str, object] = {
    "data": {"source": "canvas", "size": 40, "n_train": 4000, "n_test": 1000, "n_clutter": 4,
             "clutter_size": 8, "noise": 0.1, "seed": 0,
             # image-folder source (the paper profile): ImageFolder trees of the reader's data set
             "train_root": None, "test_root": None, "image_size": 32, "mean": None, "std": None},
    "model": {"widths": [8, 16, 32], "blocks": [1, 1, 1], "block": "basic", "stem_kernel": 3,
              "stem_stride": 1, "stem_pool": False, "fin_blocks": 4},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.2, "momentum": 0.9, "weight_decay": 5e-4,
              "nesterov": False, "schedule": "cosine", "milestones": [], "gamma": 0.1, "warmup_epochs": 0.5,
              "augment": "none", "pad": 4},
    "seeds": [0, 1, 2],
    "stability": {"settings": [{}, {"lr": 0.1}, {"batch_size": 128}, {"weight_decay": 1e-4}],
                  "thresholds": [0.5], "n_images": 300},
    "evaluation": {"n_images": 100, "steps": 16, "blur_sigma": 2.0, "blur_kernel_size": 9,
                   "iou_threshold": 0.5, "batch_size": 128},
    "examples": 6,
    "throughput": {"batch_size": 64, "steps": 6, "warmup": 2},
    "workers": 0,
}


# ----------------------------------------------------------------------------------------------- parameters

def merge_params(defaults: Mapping[str, object], overrides: Mapping[str, object],
                 where: str = CHAPTER) -> dict[str, object]:
    """``overrides`` over ``defaults``, recursively for nested mappings; an unknown key is a ValueError."""
    if not isinstance(overrides, Mapping):
        raise TypeError(f"{where} parameters must be a mapping, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {where} parameters {unknown}; expected some of {sorted(defaults)}")
    out = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if isinstance(defaults[key], Mapping):
            out[key] = merge_params(defaults[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_params(params: Mapping[str, object]) -> dict[str, object]:
    """The chapter's parameters: ``params`` over :data:`DEFAULTS`, validated (errors name the key)."""
    p = merge_params(DEFAULTS, params)
    data = p["data"]
    if data["source"] not in DATA_SOURCES:
        raise ValueError(f"unknown {CHAPTER} data source {data['source']!r}; expected one of {DATA_SOURCES}")
    if data["source"] == "image-folder" and not (data["train_root"] and data["test_root"]):
        raise ValueError(f"{CHAPTER} data source 'image-folder' needs data.train_root and data.test_root "
                         "(ImageFolder trees: <root>/<class>/<image>)")
    for key in ("size", "n_train", "n_test", "image_size"):
        check_count(CHAPTER, f"data.{key}", data[key], 1)
    seeds = p["seeds"]
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{CHAPTER} seeds must be a non-empty list of distinct ints, got {seeds!r}")
    for seed in seeds:
        check_count(CHAPTER, "seeds[]", seed)
    settings = p["stability"]["settings"]
    mappings = isinstance(settings, list) and all(isinstance(s, Mapping) for s in settings)
    if not mappings or len(settings) < 2:
        raise ValueError(f"{CHAPTER} stability.settings must be a list of at least 2 mappings (overrides of "
                         f"'train'), got {settings!r}")
    for i, setting in enumerate(settings):
        if "seed" in setting:
            raise ValueError(f"{CHAPTER} stability.settings[{i}] must not set 'seed': setting i is trained "
                             "with seed i")
        train_config(p, 0, setting)          # every override must give a valid configuration
    if len({str(sorted(s.items())) for s in settings}) != len(settings):
        raise ValueError(f"{CHAPTER} stability.settings must be distinct, got {settings!r}")
    for threshold in p["stability"]["thresholds"]:
        metrics.threshold_maps(torch.zeros(1, 1, 1), threshold)     # validates the threshold
    for key in ("n_images", "steps", "blur_kernel_size", "batch_size"):
        check_count(CHAPTER, f"evaluation.{key}", p["evaluation"][key], 1)
    check_count(CHAPTER, "stability.n_images", p["stability"]["n_images"], 1)
    check_count(CHAPTER, "examples", p["examples"])
    check_count(CHAPTER, "workers", p["workers"])
    for key in ("batch_size", "steps"):
        check_count(CHAPTER, f"throughput.{key}", p["throughput"][key], 1)
    check_count(CHAPTER, "throughput.warmup", p["throughput"]["warmup"])
    backbone_config(p, num_classes=10, in_channels=1 if data["source"] == "canvas" else 3)
    return p


def train_config(p: Mapping[str, object], seed: int,
                 override: Mapping[str, object] | None = None) -> TrainConfig:
    """The training configuration of one run: ``train`` with ``override`` on top, and ``seed``."""
    values = merge_params(p["train"], dict(override or {}), f"{CHAPTER}.train")
    return TrainConfig.from_dict({**values, "seed": seed})


def backbone_config(p: Mapping[str, object], num_classes: int, in_channels: int) -> ResNetConfig:
    model, data = p["model"], p["data"]
    if in_channels == 1:
        mean, std = (CANVAS_MEAN,), (CANVAS_STD,)
    else:
        mean = tuple(data["mean"] or (0.4914, 0.4822, 0.4465))   # CIFAR-10's statistics, the usual default
        std = tuple(data["std"] or (0.2470, 0.2435, 0.2616))
    return ResNetConfig(num_classes=num_classes, in_channels=in_channels, widths=tuple(model["widths"]),
                        blocks=tuple(model["blocks"]), block=model["block"], stem_kernel=model["stem_kernel"],
                        stem_stride=model["stem_stride"], stem_pool=model["stem_pool"], mean=mean, std=std)


def network_spec(kind: str, p: Mapping[str, object], num_classes: int, in_channels: int) -> dict[str, object]:
    if kind not in KINDS:
        raise ValueError(f"unknown network {kind!r}; expected one of {KINDS}")
    spec: dict[str, object] = {"kind": kind, "config": backbone_config(p, num_classes, in_channels).to_dict()}
    if kind == "lficam":
        spec["fin_blocks"] = p["model"]["fin_blocks"]
    return spec


# ----------------------------------------------------------------------------------------------------- data

@dataclass
class ChapterData:
    """Training and test sets of the chapter, with the canvas ground truth when there is one."""

    train: tuple[torch.Tensor, torch.Tensor] | torch.utils.data.Dataset
    test: tuple[torch.Tensor, torch.Tensor] | torch.utils.data.Dataset
    classes: tuple[str, ...]
    in_channels: int
    boxes: torch.Tensor | None = None          # [N_test, 4] exact item boxes (canvas only)

    def test_tensors(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` test images and labels as tensors."""
        if isinstance(self.test, tuple):
            return self.test[0][:n], self.test[1][:n]
        items = [self.test[i] for i in range(min(n, len(self.test)))]
        return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


def data_params(p: Mapping[str, object]) -> dict[str, object]:
    """The part of the parameters that defines the data (a component of every training's cache key)."""
    data = p["data"]
    if data["source"] == "canvas":
        keys = ("source", "size", "n_train", "n_test", "n_clutter", "clutter_size", "noise", "seed")
    else:
        keys = ("source", "train_root", "test_root", "image_size")
    return {k: data[k] for k in keys}


def _resolve(root: str) -> Path:
    """A data folder: absolute, or relative to the repository root (notebooks run in another directory)."""
    path = Path(root).expanduser()
    return path if path.is_absolute() else repository_root() / path


def load_data(p: Mapping[str, object]) -> ChapterData:
    """The canvas Fashion-MNIST sets (generated and cached by :mod:`camrepro.data.canvas`) or the reader's
    ImageFolder trees."""
    data = p["data"]
    if data["source"] == "canvas":
        from camrepro.data.canvas import make_canvas

        options = {"size": data["size"], "seed": data["seed"], "n_clutter": data["n_clutter"],
                   "clutter_size": data["clutter_size"], "noise": data["noise"]}
        train = make_canvas("train", data["n_train"], **options)
        test = make_canvas("test", data["n_test"], **options)
        return ChapterData(train=(train.images, train.labels), test=(test.images, test.labels),
                           classes=tuple(train.classes), in_channels=1, boxes=test.boxes)
    from camrepro.data.folders import image_folder

    train = image_folder(_resolve(data["train_root"]), size=data["image_size"])
    test = image_folder(_resolve(data["test_root"]), size=data["image_size"])
    if train.classes != test.classes:
        raise ValueError(f"the training and test folders have different classes: {train.classes} vs "
                         f"{test.classes}")
    return ChapterData(train=train, test=test, classes=tuple(train.classes), in_channels=3)


# ------------------------------------------------------------------------------------------------- training

def trained(kind: str, p: Mapping[str, object], seed: int, override: Mapping[str, object] | None = None,
            device: str = "cpu", lazy: _LazyData | None = None) -> CachedTraining:
    """The network ``kind`` trained with ``seed`` (and a hyper-parameter ``override``), from the cache if
    there; ``lazy`` shares one data set between calls."""
    lazy = lazy or _LazyData(p)
    spec = network_spec(kind, p, lazy.num_classes, lazy.in_channels)
    return train_cached(CHAPTER, f"train-{kind}", spec, train_config(p, seed, override),
                        lambda: lazy.get().train, test_data=lambda: lazy.get().test,
                        data_params=data_params(p), device=device, workers=p["workers"])


class _LazyData:
    """Loads the data only when a training or an evaluation needs it (cache hits need nothing)."""

    def __init__(self, p: Mapping[str, object], data: ChapterData | None = None):
        self.p, self.data = p, data

    def get(self) -> ChapterData:
        if self.data is None:
            self.data = load_data(self.p)
        return self.data

    @property
    def in_channels(self) -> int:
        return 1 if self.p["data"]["source"] == "canvas" else 3

    @property
    def num_classes(self) -> int:
        if self.p["data"]["source"] == "canvas":
            return 10
        return len(self.get().classes)


# ---------------------------------------------------------------------------------------------- explanation

def explain(kind: str, model: nn.Module, images: torch.Tensor, batch_size: int = 128,
            device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(maps [N, H, W] in [0, 1], predicted classes [N]): Grad-CAM at the last stage for the plain network,
    the network's own attention map for ABN and LFI-CAM."""
    if kind == "plain":
        method = GradCAM(model, layer=model.cam_layer)
    else:
        method = AttentionMap(model)
    maps, predictions = [], []
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start:start + batch_size].to(device)
        explanation = method.explain(chunk)
        maps.append(method(chunk, explanation.targets).cpu())
        predictions.append(explanation.targets.cpu())
    return torch.cat(maps), torch.cat(predictions)


def attention_quality(model: nn.Module, maps: torch.Tensor, images: torch.Tensor, targets: torch.Tensor,
                      boxes: torch.Tensor | None, e: Mapping[str, object],
                      device: str | torch.device = "cpu") -> dict[str, float]:
    """Faithfulness (AD, AI, AG in %, deletion and insertion AUC) and, with boxes, localisation (energy
    pointing game, pointing game, IoU of the map thresholded at ``iou_threshold`` with the box) of
    ``maps``."""
    classifier = LogitsOnly(model)
    images, maps = images.to(device), maps.to(device)
    scores = metrics.drop_increase_gain(classifier, images, maps, targets, batch_size=e["batch_size"])
    row = {"AD": scores["AD"], "AI": scores["AI"], "AG": scores["AG"]}
    for mode in ("deletion", "insertion"):
        curve = metrics.insertion_deletion(classifier, images, maps, targets, mode=mode, steps=e["steps"],
                                           blur_sigma=e["blur_sigma"], blur_kernel_size=e["blur_kernel_size"],
                                           batch_size=e["batch_size"])
        row[mode] = curve["auc"]
    if boxes is not None:
        boxes = boxes.to(maps.device)
        row["energy_pointing"] = float(metrics.energy_pointing_game(maps, boxes).mean())
        row["pointing"] = float(metrics.pointing_game(maps, boxes).float().mean())
        row["box_iou"] = float(metrics.iou_with_box(maps, boxes, e["iou_threshold"]).mean())
    return row


# ------------------------------------------------------------------------------------------------------ run

def _accuracy_rows(runs: Mapping[tuple[str, int], CachedTraining]) -> list[dict[str, object]]:
    rows = []
    for (kind, seed), run in runs.items():
        last = run.history.iloc[-1]
        rows.append({"network": kind, "label": LABELS[kind], "seed": seed,
                     "test_accuracy": float(last["test_accuracy"]),
                     "train_accuracy": float(last["train_accuracy"]),
                     "epochs": int(last["epoch"]), "train_seconds": float(run.history["seconds"].sum()),
                     "parameters": sum(q.numel() for q in run.model.parameters())})
    return rows


def _curves(runs: Mapping[tuple[str, int], CachedTraining], group: str) -> list[pd.DataFrame]:
    return [run.history.assign(network=kind, label=LABELS[kind], seed=seed, group=group)
            for (kind, seed), run in runs.items()]


def _evaluate(p: Mapping[str, object], device: str) -> dict[str, object]:
    lazy = _LazyData(p)
    seeds, settings = p["seeds"], p["stability"]["settings"]
    runs = {(kind, seed): trained(kind, p, seed, device=device, lazy=lazy)
            for kind in KINDS for seed in seeds}
    variants = {(kind, i): trained(kind, p, i, setting, device=device, lazy=lazy)
                for kind in ("abn", "lficam") for i, setting in enumerate(settings)}
    data = lazy.get()
    e = p["evaluation"]

    # attention quality: every seed's map on the first n_images test images
    images, labels = data.test_tensors(e["n_images"])
    boxes = data.boxes[:images.shape[0]] if data.boxes is not None else None
    quality, per_image_maps = [], {}
    for (kind, seed), run in runs.items():
        maps, predicted = explain(kind, run.model, images, e["batch_size"], device)
        per_image_maps[(kind, seed)] = maps, predicted
        row = {"network": kind, "label": LABELS[kind], "seed": seed,
               "accuracy_on_subset": float((predicted == labels).float().mean())}
        row.update(attention_quality(run.model, maps, images, predicted, boxes, e, device))
        quality.append(row)
    if boxes is not None:
        box_area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).float()
        chance = float((box_area / (images.shape[-1] * images.shape[-2])).mean())
    else:
        chance = float("nan")

    # stability: thresholded maps of the models of each group, on the first stability.n_images test images
    s_images, _ = data.test_tensors(p["stability"]["n_images"])
    stability, matrices = [], {}
    groups: list[tuple[str, str, list[nn.Module]]] = []
    for kind in ("abn", "lficam"):
        groups.append((kind, "hyper-parameters", [variants[(kind, i)].model for i in range(len(settings))]))
    if len(seeds) >= 2:
        for kind in KINDS:
            groups.append((kind, "seeds", [runs[(kind, seed)].model for seed in seeds]))
    for kind, varied, group_models in groups:
        maps = [explain(kind, m, s_images, e["batch_size"], device)[0] for m in group_models]
        for threshold in p["stability"]["thresholds"]:
            result = metrics.mean_pairwise_iou(maps, threshold)
            foreground = [float(metrics.threshold_maps(m, threshold).float().mean()) for m in maps]
            stability.append({"network": kind, "label": LABELS[kind], "varied": varied,
                              "threshold": str(threshold), "mean_iou": result.mean,
                              "models": len(group_models), "images": s_images.shape[0],
                              "foreground": float(np.mean(foreground))})
            matrices[f"{kind}-{varied}-{threshold}"] = result.matrix.cpu().numpy()

    shown = ("lr", "batch_size", "weight_decay", "epochs", "schedule")
    setting_rows = [{"setting": i, "seed": i,
                     **{k: v for k, v in train_config(p, i, s).to_dict().items() if k in shown},
                     "override": ", ".join(f"{k}={v}" for k, v in s.items()) or "(defaults)",
                     **{f"{kind}_test_accuracy": float(variants[(kind, i)].history.iloc[-1]["test_accuracy"])
                        for kind in ("abn", "lficam")}}
                    for i, s in enumerate(settings)]

    examples: dict[str, np.ndarray] = {}
    n_examples = min(p["examples"], images.shape[0])
    if n_examples:
        examples["images"] = images[:n_examples].mean(dim=1).numpy()
        examples["labels"] = labels[:n_examples].numpy()
        if boxes is not None:
            examples["boxes"] = boxes[:n_examples].cpu().numpy()
        first = seeds[0]
        for kind in KINDS:
            maps, predicted = per_image_maps[(kind, first)]
            examples[f"maps_{kind}"] = maps[:n_examples].numpy()
            examples[f"predicted_{kind}"] = predicted[:n_examples].numpy()
    distinct = {}
    for group, items in (("seeds", runs), ("hyper-parameters", variants)):
        for (kind, index), run in items.items():
            distinct.setdefault(run.result.path.name, {
                "network": kind, "label": LABELS[kind], "first_used_for": group, "seed": index,
                "epochs": len(run.history), "train_seconds": float(run.history["seconds"].sum()),
                "test_accuracy": float(run.history.iloc[-1]["test_accuracy"]),
                "cache_entry": run.result.path.name})
    return {
        "runs": pd.DataFrame(list(distinct.values())),
        "accuracy": pd.DataFrame(_accuracy_rows(runs)),
        "quality": pd.DataFrame(quality).assign(box_area_fraction=chance),
        "stability": pd.DataFrame(stability),
        "settings": pd.DataFrame(setting_rows),
        "curves": pd.concat(_curves(runs, "seeds") + _curves(variants, "hyper-parameters"), ignore_index=True),
        "classes": pd.DataFrame({"index": range(len(data.classes)), "name": list(data.classes)}),
        "examples": examples,
        "iou_matrices": matrices,
    }


def run(params: Mapping[str, object], device: str = "cpu") -> dict[str, cache.Result]:
    """Every result of the chapter (see the module docstring): ``{"evaluation": ..., "throughput": ...}``.

    ``evaluation`` tables: runs (every distinct training, with its wall time), accuracy (network, seed,
    test_accuracy, …), quality (AD, AI, AG, deletion, insertion, energy_pointing, pointing, box_iou per
    network and seed), stability (network, varied, threshold, mean_iou), settings (the hyper-parameter
    settings and each one's accuracies), curves (per-epoch history of every training), classes; arrays:
    examples, iou_matrices. ``throughput``: see :func:`training_throughput`.
    """
    p = check_params(params)
    evaluation = cache.cached(CHAPTER, "evaluation", p, lambda: _evaluate(p, device), device=device)
    throughput = cache.cached(CHAPTER, "throughput", {"params": p, "device": str(device)},
                              lambda: {"throughput": training_throughput(p, device)}, device=device)
    return {"evaluation": evaluation, "throughput": throughput}


# ---------------------------------------------------------------------------------------------- performance

def training_throughput(params: Mapping[str, object], device: str = "cpu", *, batch_size: int | None = None,
                        steps: int | None = None, warmup: int | None = None) -> pd.DataFrame:
    """Training images per second of the plain backbone, ABN and LFI-CAM at the chapter's scale.

    Each network does ``warmup`` untimed and then ``steps`` timed SGD steps (forward, loss, backward,
    update) on one fixed random batch of the chapter's input size; the networks alternate step by step so
    that a change in the machine's load affects all three alike, and each network's median step time is
    reported.
    ``overhead`` is the extra time per image over the plain backbone (LFI-CAM: the FIN's cost; ABN: its
    attention branch's). Inference (eval-mode forward) images per second are reported beside it.
    """
    p = check_params(params)
    t = p["throughput"]
    batch_size = batch_size or t["batch_size"]
    steps = steps or t["steps"]
    warmup = t["warmup"] if warmup is None else warmup
    data = p["data"]
    canvas = data["source"] == "canvas"
    in_channels, side = (1, data["size"]) if canvas else (3, data["image_size"])
    num_classes = 10 if canvas else len(load_data(p).classes)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, in_channels, side, side, generator=generator).to(device)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    nets, optimizers = {}, {}
    for kind in KINDS:
        with seeded(0):
            nets[kind] = build_network(network_spec(kind, p, num_classes, in_channels)).to(device).train()
        optimizers[kind] = torch.optim.SGD(nets[kind].parameters(), lr=1e-3, momentum=0.9)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    eval_times: dict[str, list[float]] = {kind: [] for kind in KINDS}

    def synchronize() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for step in range(warmup + steps):
        for kind in KINDS:
            net, optimizer = nets[kind], optimizers[kind]
            synchronize()
            tick = time.perf_counter()
            loss = net.training_loss(net(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            synchronize()
            elapsed = time.perf_counter() - tick
            net.eval()
            with torch.no_grad():
                tick = time.perf_counter()
                net(images)
                synchronize()
                eval_elapsed = time.perf_counter() - tick
            net.train()
            if step >= warmup:
                times[kind].append(elapsed)
                eval_times[kind].append(eval_elapsed)
    rows = []
    base = float(np.median(times["plain"]))
    for kind in KINDS:
        median = float(np.median(times[kind]))
        rows.append({"network": kind, "label": LABELS[kind], "batch_size": batch_size, "steps": steps,
                     "seconds_per_step": median, "images_per_second": batch_size / median,
                     "overhead": median / base - 1.0,
                     "inference_images_per_second": batch_size / float(np.median(eval_times[kind])),
                     "parameters": sum(q.numel() for q in nets[kind].parameters()),
                     "input": f"{in_channels}×{side}×{side}", "device": str(device),
                     "threads": torch.get_num_threads()})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------- claims

VERDICT_RULES: dict[str, str] = {
    "accuracy": "with d = LFI-CAM's mean test accuracy minus the plain backbone's and se its standard error "
                "(√(s₁²/n + s₂²/n) over the seeds): reproduced if d > 2·se (clearly more accurate); partly "
                "reproduced if |d| ≤ 2·se (no difference this experiment can resolve); not reproduced if "
                "d < −2·se.",
    "accuracy-abn": "the same rule with ABN in place of the plain backbone.",
    "quality": "count the attention-quality measures on which LFI-CAM's map (mean over seeds) beats ABN's "
               "(AD lower; AI, AG higher; deletion AUC lower; insertion AUC higher; and, with boxes, energy "
               "pointing game, pointing game and box IoU higher): reproduced if at least two thirds of them; "
               "partly reproduced if at least one third; not reproduced otherwise.",
    "stability": "reproduced if LFI-CAM's mean pairwise IoU across hyper-parameter settings exceeds ABN's by "
                 "at least 0.14 (half the smallest published gap, 0.60 − 0.32 = 0.28); partly reproduced if "
                 "it exceeds ABN's by less; not reproduced if it does not exceed it.",
}


def accuracy_verdict(ours: Sequence[float], other: Sequence[float]) -> tuple[str, float, float]:
    """(verdict, d, se) of the rule ``VERDICT_RULES["accuracy"]`` for two samples of accuracies."""
    a, b = np.asarray(ours, dtype=float), np.asarray(other, dtype=float)
    d = float(a.mean() - b.mean())
    variance = sum(x.var(ddof=1) / x.size for x in (a, b) if x.size > 1)
    se = float(np.sqrt(variance))
    if d > 2 * se:
        return "reproduced", d, se
    if d >= -2 * se:
        return "partly reproduced", d, se
    return "not reproduced", d, se


HIGHER_IS_BETTER = {"AD": False, "AI": True, "AG": True, "deletion": False, "insertion": True,
                    "energy_pointing": True, "pointing": True, "box_iou": True}


def quality_wins(quality: pd.DataFrame, ours: str = "lficam", other: str = "abn") -> tuple[int, int]:
    """(measures on which ``ours`` beats ``other``, measures compared), on the means over seeds."""
    means = quality.groupby("network").mean(numeric_only=True)
    wins = total = 0
    for column, higher in HIGHER_IS_BETTER.items():
        if column not in means or means[column].isna().any():
            continue
        total += 1
        a, b = means.loc[ours, column], means.loc[other, column]
        wins += int(a > b if higher else a < b)
    return wins, total


def quality_verdict(wins: int, total: int) -> str:
    if total == 0:
        return "not testable here"
    if 3 * wins >= 2 * total:
        return "reproduced"
    return "partly reproduced" if 3 * wins >= total else "not reproduced"


def stability_verdict(lficam: float, abn: float) -> str:
    if lficam - abn >= 0.14:
        return "reproduced"
    return "partly reproduced" if lficam > abn else "not reproduced"


def _mean_std(values: pd.Series) -> str:
    if len(values) > 1:
        return f"{100 * values.mean():.1f} ± {100 * values.std(ddof=1):.1f} %"
    return f"{100 * values.mean():.1f} % (one seed)"


def claims(params: Mapping[str, object], device: str = "cpu") -> pd.DataFrame:
    """The LFI-CAM paper's claims that this chapter tests, each with its verdict by :data:`VERDICT_RULES`."""
    return claims_from(run(params, device))


def claims_from(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """:func:`claims` from the results of :func:`run` already in hand."""
    results = results["evaluation"]
    accuracy, quality, stability = results["accuracy"], results["quality"], results["stability"]
    published_iou = published("lficam_stability_iou")
    rows = []

    def add(claim: str, published_text: str, ours: str, verdict: str, source: str) -> None:
        rows.append({"paper": PAPER, "claim": claim, "published": published_text, "ours": ours,
                     "verdict": verdict, "source": source})

    acc = {kind: accuracy[accuracy.network == kind].test_accuracy for kind in KINDS}
    abstract = "LFI-CAM paper, abstract (its accuracy tables are not transcribed in data/reference)"
    verdict, d, se = accuracy_verdict(acc["lficam"], acc["plain"])
    add("LFI-CAM is more accurate than the plain backbone it is built on",
        "LFI-CAM \"outperforms the baseline models' accuracy on the classification tasks\"",
        f"LFI-CAM {_mean_std(acc['lficam'])} vs ResNet {_mean_std(acc['plain'])} (d = {100 * d:+.1f}, "
        f"se {100 * se:.1f} points)", verdict, abstract)
    verdict, d, se = accuracy_verdict(acc["lficam"], acc["abn"])
    add("LFI-CAM is at least as accurate as ABN",
        "LFI-CAM's accuracy is compared with ABN's and the baseline's (stated in the abstract)",
        f"LFI-CAM {_mean_std(acc['lficam'])} vs ABN {_mean_std(acc['abn'])} (d = {100 * d:+.1f}, "
        f"se {100 * se:.1f} points)", verdict, abstract)
    wins, total = quality_wins(quality)
    add("LFI-CAM's attention maps are better explanations than ABN's",
        "LFI-CAM \"significantly improves on the previous works in terms of attention map quality\"",
        f"LFI-CAM better on {wins} of {total} measures (AD/AI/AG, deletion/insertion, pointing games, "
        "box IoU)",
        quality_verdict(wins, total), "LFI-CAM paper, abstract")
    hyper = stability[(stability.varied == "hyper-parameters")]
    first_threshold = hyper.threshold.iloc[0]
    hyper = hyper[hyper.threshold == first_threshold].set_index("network")
    lfi_iou, abn_iou = float(hyper.loc["lficam", "mean_iou"]), float(hyper.loc["abn", "mean_iou"])
    lfi_pub = published_iou[published_iou.method == "LFI-CAM"].mean_pairwise_attention_iou
    abn_pub = published_iou[published_iou.method == "ABN"].mean_pairwise_attention_iou
    add("LFI-CAM's attention maps are more stable than ABN's across hyper-parameter settings",
        f"mean pairwise IoU LFI-CAM {lfi_pub.min():.2f}-{lfi_pub.max():.2f} vs ABN {abn_pub.min():.2f}-"
        f"{abn_pub.max():.2f} (CIFAR-10, STL-10, Cat-Dog; 5 settings)",
        f"LFI-CAM {lfi_iou:.2f} vs ABN {abn_iou:.2f} ({int(hyper.loc['lficam', 'models'])} settings, "
        f"threshold {first_threshold})", stability_verdict(lfi_iou, abn_iou),
        "LFI-CAM official repository, asset/IOU_Test.png (data/reference/lficam_stability_iou.csv)")
    return pd.DataFrame(rows)
