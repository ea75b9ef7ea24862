"""The lficam chapter's compute units: trainings, per-image attention quality, per-image stability, throughput.

- ``training``: one run per network (plain ResNet, ABN, LFI-CAM) and seed, and one per attention network and
  stability setting (setting i is trained with seed i, so setting 0 — the defaults — is the seed-0 run and is
  trained once). Every training is cached by content hash (:func:`camrepro.training.train_cached`), so a
  rebuild loads the weights. Tables: ``accuracy`` (one row per network and seed: the accuracy claims'
  units), ``runs``, ``settings``, ``curves``, ``classes``.
- ``quality``: every seed's map of the first ``evaluation.n_images`` test images, scored per image for the
  class the network predicts (AD/AI/AG, and against the canvas item's exact mask the energy pointing game,
  the pointing game and the IoU of the thresholded map). Arrays: example maps.
- ``stability``: per test image, the IoU of the thresholded maps averaged over every pair of models trained
  under the different settings (and, for comparison, under different seeds at fixed settings).
- ``throughput``: training and inference images per second of each network (:func:`training_throughput`).

The plain network is explained by Grad-CAM at its last stage through the map store (keyed by the trained
weights' cache entry); ABN and LFI-CAM by their own attention maps, which are part of their forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from camrepro import metrics, side_by_side
from camrepro.experiments.chapter import ALL_RANKS, Unit
from camrepro.experiments.kit.maps import MapStore
from camrepro.experiments.kit.metric_tables import drop_increase_gain_per_image
from camrepro.experiments.kit.timing import interleaved
from camrepro.experiments.lficam.params import (
    ATTENTION_KINDS, CHAPTER, KINDS, LABELS, SCHEMA, data_params, network_spec, train_config,
)
from camrepro.methods.attention import AttentionMap
from camrepro.methods.grad_cam import GradCAM
from camrepro.models.attention_output import LogitsOnly
from camrepro.data.paths import user_path
from camrepro.tensors import normalize_maps, upsample
from camrepro.training import CachedTraining, TrainConfig, build_network, is_trained, seeded, train_cached


# ----------------------------------------------------------------------------------------------------- data

@dataclass
class ChapterData:
    """Training and test sets, with the canvas ground truth (exact item masks) when there is one."""

    train: tuple[torch.Tensor, torch.Tensor] | torch.utils.data.Dataset
    test: tuple[torch.Tensor, torch.Tensor] | torch.utils.data.Dataset
    classes: tuple[str, ...]
    in_channels: int
    masks: torch.Tensor | None = None          # [N_test, H, W] bool (canvas only)
    boxes: torch.Tensor | None = None          # [N_test, 4] (canvas only)

    def test_tensors(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` test images and labels as tensors."""
        if isinstance(self.test, tuple):
            return self.test[0][:n], self.test[1][:n]
        items = [self.test[i] for i in range(min(n, len(self.test)))]
        return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


def image_names(n: int) -> list[str]:
    """The units of the per-image tables: test images by their index in the test set."""
    return [f"test-{i:05d}" for i in range(n)]


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
                           classes=tuple(train.classes), in_channels=1, masks=test.masks, boxes=test.boxes)
    from camrepro.data.folders import image_folder

    train = image_folder(user_path(data["train_root"]), size=data["image_size"])
    test = image_folder(user_path(data["test_root"]), size=data["image_size"])
    if train.classes != test.classes:
        raise ValueError(f"the training and test folders have different classes: {train.classes} vs "
                         f"{test.classes}")
    return ChapterData(train=train, test=test, classes=tuple(train.classes), in_channels=3)


class Context:
    """What the units of one run share: the data (loaded only when a unit needs it; cache hits need
    nothing) and the trained networks."""

    def __init__(self, p: Mapping[str, object]):
        self.p = p
        self._data: ChapterData | None = None
        self._runs: dict[tuple[str, int, int | None], CachedTraining] = {}

    def data(self) -> ChapterData:
        if self._data is None:
            self._data = load_data(self.p)
        return self._data

    @property
    def in_channels(self) -> int:
        return 1 if self.p["data"]["source"] == "canvas" else 3

    @property
    def num_classes(self) -> int:
        return 10 if self.p["data"]["source"] == "canvas" else len(self.data().classes)

    def run_spec(self, kind: str, seed: int, setting: int | None = None) -> tuple[tuple, str, dict, TrainConfig]:
        """(key of the run, cache name, network spec, training configuration) of a run (see :meth:`trained`)."""
        settings = self.p["stability"]["settings"]
        override = settings[setting] if setting is not None else {}
        seed = setting if setting is not None else seed
        spec = network_spec(kind, self.p, self.num_classes, self.in_channels)
        return ((kind, seed, None if not override else setting), f"train-{kind}", spec,
                train_config(self.p, seed, override))

    def is_trained(self, kind: str, seed: int, setting: int | None = None) -> bool:
        """Whether the run is in the cache already (:meth:`trained` would load it)."""
        _, name, spec, config = self.run_spec(kind, seed, setting)
        return is_trained(CHAPTER, name, spec, config, data_params=data_params(self.p))

    def trained(self, kind: str, seed: int, setting: int | None = None, device: str = "cpu") -> CachedTraining:
        """``kind`` trained with ``seed`` (and the hyper-parameters of stability setting ``setting``, which
        is trained with seed ``setting``; setting 0 with seed 0 is the seed-0 run)."""
        key, name, spec, config = self.run_spec(kind, seed, setting)
        if key not in self._runs:
            self._runs[key] = train_cached(
                CHAPTER, name, spec, config, lambda: self.data().train, test_data=lambda: self.data().test,
                data_params=data_params(self.p), device=device, workers=self.p["workers"])
        return self._runs[key]


# ---------------------------------------------------------------------------------------------- explanation

@dataclass
class Maps:
    maps: torch.Tensor          # [N, H, W] in [0, 1], CPU
    predicted: torch.Tensor     # [N]
    all_zero: np.ndarray        # [N] bool


def explain(kind: str, run: CachedTraining, images: torch.Tensor, batch_size: int = 128,
            device: str | torch.device = "cpu") -> Maps:
    """The maps of ``images`` for the predicted classes: Grad-CAM at the last stage (through the map store)
    for the plain network, the network's own attention map for ABN and LFI-CAM."""
    model = run.model
    classifier = LogitsOnly(model)
    predicted = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            predicted.append(classifier(images[start:start + batch_size].to(device)).argmax(1).cpu())
    predicted = torch.cat(predicted)
    if kind == "plain":
        store = MapStore(GradCAM(model, layer=model.cam_layer), model=f"{CHAPTER}-plain-{run.result.path.name}",
                         method="grad-cam")
        stored = store.get(images.to(device), predicted.to(device), chunk=batch_size)
        return Maps(stored.maps, predicted, stored.all_zero)
    method = AttentionMap(model)
    maps, all_zero = [], []
    for start in range(0, images.shape[0], batch_size):
        explanation = method.explain(images[start:start + batch_size].to(device))
        saliency = explanation.saliency.detach().float()
        maps.append(normalize_maps(upsample(saliency, tuple(images.shape[-2:]))).cpu())
        all_zero.append(explanation.all_zero.cpu().numpy())
    return Maps(torch.cat(maps), predicted, np.concatenate(all_zero))


def quality_rows(run: CachedTraining, maps: Maps, images: torch.Tensor, labels: torch.Tensor,
                 masks: torch.Tensor | None, e: Mapping[str, object],
                 device: str | torch.device = "cpu") -> pd.DataFrame:
    """One row per image: AD/AI/AG terms (pixel-space masking) and, with masks, the energy pointing game, the
    pointing game and the IoU of the thresholded map with the item's mask."""
    classifier = LogitsOnly(run.model)
    x, m, targets = images.to(device), maps.maps.to(device), maps.predicted.to(device)
    p, o = metrics.masked_probabilities(classifier, x, m, targets, batch_size=e["batch_size"])
    table = drop_increase_gain_per_image(p.numpy(), o.numpy())
    table.insert(0, "o", o.numpy())
    table.insert(0, "p", p.numpy())
    table.insert(0, "all_zero", maps.all_zero.astype(bool))
    table.insert(0, "correct", (maps.predicted == labels).numpy())
    table.insert(0, "predicted", maps.predicted.numpy())
    table.insert(0, "label", labels.numpy())
    table.insert(0, "image", image_names(images.shape[0]))
    if masks is not None:
        regions = masks.to(m.device)
        table["energy_pointing"] = metrics.energy_pointing_game(m, regions).cpu().numpy()
        table["pointing"] = metrics.pointing_game(m, regions).float().cpu().numpy()
        table["mask_iou"] = metrics.iou_with_box(m, regions, e["iou_threshold"]).cpu().numpy()
        table["mask_fraction"] = masks.flatten(1).float().mean(1).numpy()
    return table


# ------------------------------------------------------------------------------------------------ the units

# Below this many training steps in all, the trainings run in this process: a worker process costs ~3 s of
# imports, about 50 steps of the book profile's networks.
MIN_STEPS_FOR_WORKERS = 1000


def _train_in_worker(p: Mapping[str, object], kind: str, seed: int, setting: int | None) -> None:
    """One training in a worker process of :func:`camrepro.side_by_side.run` (it stores the result)."""
    Context(p).trained(kind, seed, setting, device="cpu")


def _train_missing(ctx: Context, jobs: list[tuple[str, int, int | None]], device: str) -> None:
    """The jobs not in the cache yet, trained side by side on the CPU when they are worth a worker each."""
    p = ctx.p
    missing, seen = [], set()
    for job in jobs:
        key = ctx.run_spec(*job)[0]
        if key not in seen and not ctx.is_trained(*job):
            seen.add(key)
            missing.append(job)
    if p["data"]["source"] == "canvas":
        steps = -(-p["data"]["n_train"] // p["train"]["batch_size"]) * p["train"]["epochs"] * len(missing)
        if steps < MIN_STEPS_FOR_WORKERS:
            return
    side_by_side.run(_train_in_worker, [(dict(p), *job) for job in missing], device)


def _training(ctx: Context, device: str) -> dict[str, object]:
    p = ctx.p
    seeds, settings = p["seeds"], p["stability"]["settings"]
    jobs = [(kind, seed, None) for kind in KINDS for seed in seeds]
    jobs += [(kind, i, i) for kind in ATTENTION_KINDS for i in range(len(settings))]
    _train_missing(ctx, jobs, device)
    runs = {job: ctx.trained(*job, device=device) for job in jobs}
    accuracy, curves, distinct = [], [], {}
    for (kind, seed, setting), run in runs.items():
        last = run.history.iloc[-1]
        group = "seeds" if setting is None else "hyper-parameters"
        row = {"network": kind, "label": LABELS[kind], "seed": seed,
               "test_accuracy": float(last["test_accuracy"]), "train_accuracy": float(last["train_accuracy"]),
               "epochs": int(last["epoch"]), "train_seconds": float(run.history["seconds"].sum())}
        if setting is None:
            accuracy.append({**row, "parameters": sum(q.numel() for q in run.model.parameters())})
        curves.append(run.history.assign(network=kind, label=LABELS[kind], seed=seed, group=group))
        distinct.setdefault(run.result.path.name, {**row, "first_used_for": group,
                                                   "cache_entry": run.result.path.name})
    shown = ("lr", "batch_size", "weight_decay", "epochs", "schedule")
    setting_rows = [{"setting": i, "seed": i,
                     **{k: v for k, v in train_config(p, i, s).to_dict().items() if k in shown},
                     "override": ", ".join(f"{k}={v}" for k, v in s.items()) or "(defaults)",
                     **{f"{kind}_test_accuracy": float(runs[(kind, i, i)].history.iloc[-1]["test_accuracy"])
                        for kind in ATTENTION_KINDS}}
                    for i, s in enumerate(settings)]
    classes = ctx.data().classes
    return {"accuracy": pd.DataFrame(accuracy), "runs": pd.DataFrame(list(distinct.values())),
            "settings": pd.DataFrame(setting_rows), "curves": pd.concat(curves, ignore_index=True),
            "classes": pd.DataFrame({"index": range(len(classes)), "name": list(classes)})}


def _quality(ctx: Context, device: str) -> dict[str, object]:
    p, e = ctx.p, ctx.p["evaluation"]
    data = ctx.data()
    images, labels = data.test_tensors(e["n_images"])
    masks = data.masks[:images.shape[0]] if data.masks is not None else None
    rows, examples = [], {}
    n_examples = min(p["examples"], images.shape[0])
    if n_examples:
        examples = {"images": images[:n_examples].mean(dim=1).numpy(), "labels": labels[:n_examples].numpy()}
        if masks is not None:
            examples["masks"] = masks[:n_examples].numpy()
            examples["boxes"] = data.boxes[:n_examples].numpy()
    for kind in KINDS:
        for seed in p["seeds"]:
            run = ctx.trained(kind, seed, device=device)
            maps = explain(kind, run, images, e["batch_size"], device)
            table = quality_rows(run, maps, images, labels, masks, e, device)
            rows.append(table.assign(network=kind, label=LABELS[kind], seed=seed))
            if n_examples and seed == p["seeds"][0]:
                examples[f"maps_{kind}"] = maps.maps[:n_examples].numpy()
                examples[f"predicted_{kind}"] = maps.predicted[:n_examples].numpy()
    out: dict[str, object] = {"quality": pd.concat(rows, ignore_index=True)}
    if examples:
        out["examples"] = examples
    return out


def _stability(ctx: Context, device: str) -> dict[str, object]:
    p, s = ctx.p, ctx.p["stability"]
    images, _ = ctx.data().test_tensors(s["n_images"])
    names = image_names(images.shape[0])
    batch = p["evaluation"]["batch_size"]
    groups = [(kind, "hyper-parameters", [ctx.trained(kind, i, i, device) for i in range(len(s["settings"]))])
              for kind in ATTENTION_KINDS]
    if len(p["seeds"]) >= 2:
        groups += [(kind, "seeds", [ctx.trained(kind, seed, device=device) for seed in p["seeds"]])
                   for kind in KINDS]
    rows, pairs = [], []
    for kind, varied, runs in groups:
        explained = [explain(kind, run, images, batch, device) for run in runs]
        result = metrics.mean_pairwise_iou([m.maps for m in explained], s["threshold"])
        on = torch.stack([metrics.threshold_maps(m.maps, s["threshold"]).flatten(1).float().mean(1)
                          for m in explained])
        zero = np.stack([m.all_zero for m in explained]).sum(0)
        rows.append(pd.DataFrame({"network": kind, "label": LABELS[kind], "varied": varied, "image": names,
                                  "iou": result.per_image.cpu().numpy(), "foreground": on.mean(0).numpy(),
                                  "all_zero_models": zero, "models": len(runs)}))
        matrix = result.matrix.cpu().numpy()
        pairs += [{"network": kind, "label": LABELS[kind], "varied": varied, "model_a": i, "model_b": j,
                   "iou": float(matrix[i, j])} for i in range(len(runs)) for j in range(i + 1, len(runs))]
    return {"stability": pd.concat(rows, ignore_index=True), "pairs": pd.DataFrame(pairs)}


def units(p: dict[str, object]) -> list[Unit]:
    """The chapter's units, each keyed by the parameters its result depends on."""
    ctx = Context(p)
    trained = {k: p[k] for k in ("model", "train", "seeds")} | {"data": data_params(p) | p["data"]}
    settings = p["stability"]["settings"]
    return [
        Unit("training", {**trained, "settings": settings}, lambda device: _training(ctx, device),
             under_torchrun=ALL_RANKS),   # DDP: every rank trains every network together
        Unit("quality", {**trained, "evaluation": p["evaluation"], "examples": p["examples"]},
             lambda device: _quality(ctx, device), per_image=True),
        Unit("stability", {**trained, "stability": p["stability"], "batch_size": p["evaluation"]["batch_size"]},
             lambda device: _stability(ctx, device), per_image=True),
        Unit("throughput", {k: p[k] for k in ("model", "throughput")} | {"data": data_params(p) | p["data"]},
             lambda device: {"throughput": training_throughput(p, device)}),
    ]


# ---------------------------------------------------------------------------------------------- performance

def training_throughput(params: Mapping[str, object], device: str = "cpu", *, batch_size: int | None = None,
                        steps: int | None = None, warmup: int | None = None) -> pd.DataFrame:
    """Training images per second of the plain backbone, ABN and LFI-CAM at the chapter's scale.

    ``params``: the chapter's parameters (a profile's section is enough; it is resolved over the defaults).
    Each network does ``warmup`` untimed rounds and then ``steps`` timed SGD steps (forward, loss, backward,
    update) and eval-mode forwards on one fixed random batch of the chapter's input size, the six calls
    interleaved round by round (:func:`camrepro.experiments.kit.timing.interleaved`) so that a change in the
    machine's load affects all alike; each network's median is reported. ``overhead`` is the median per-round
    ratio of its step time to the plain backbone's, minus 1 (LFI-CAM: the FIN's cost).
    """
    p = SCHEMA.resolve(params)
    t = p["throughput"]
    batch_size, steps = batch_size or t["batch_size"], steps or t["steps"]
    warmup = t["warmup"] if warmup is None else warmup
    canvas = p["data"]["source"] == "canvas"
    in_channels, side = (1, p["data"]["size"]) if canvas else (3, p["data"]["image_size"])
    num_classes = 10 if canvas else len(load_data(p).classes)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, in_channels, side, side, generator=generator).to(device)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    nets: dict[str, nn.Module] = {}
    calls = {}
    for kind in KINDS:
        with seeded(0):
            net = build_network(network_spec(kind, p, num_classes, in_channels)).to(device)
        nets[kind] = net
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, foreach=True)   # as training.train

        def step(net: nn.Module = net, optimizer: torch.optim.Optimizer = optimizer) -> None:
            net.train()
            loss = net.training_loss(net(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        def infer(net: nn.Module = net) -> None:
            net.eval()
            with torch.no_grad():
                net(images)

        calls[f"{kind}-train"], calls[f"{kind}-eval"] = step, infer
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times = interleaved(calls, rounds=steps, device=torch.device(device), warmup=False)
    wide = times.pivot(index="round", columns="call", values="seconds")
    rows = []
    for kind in KINDS:
        median = float(wide[f"{kind}-train"].median())
        rows.append({"network": kind, "label": LABELS[kind], "batch_size": batch_size, "steps": steps,
                     "seconds_per_step": median, "images_per_second": batch_size / median,
                     "overhead": float((wide[f"{kind}-train"] / wide["plain-train"]).median()) - 1.0,
                     "inference_images_per_second": batch_size / float(wide[f"{kind}-eval"].median()),
                     "parameters": sum(q.numel() for q in nets[kind].parameters()),
                     "input": f"{in_channels}×{side}×{side}", "device": str(device),
                     "threads": torch.get_num_threads(), "load": float(times["load"].mean())})
    return pd.DataFrame(rows)
