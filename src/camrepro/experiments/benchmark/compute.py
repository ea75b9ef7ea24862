"""The benchmark chapter's compute units, one of each kind per network.

- ``maps-<model>``: predicted classes (the targets: the photos carry no labels), every method's maps through
  the map store, AD/AI/AG per photo, insertion/deletion AUC per photo with the mean curves, example maps;
- ``grid-<model>``: the grid pointing game, one row per grid map (the claims' unit is the grid);
- ``randomisation-<model>``: rank correlation per photo between each method's map on the trained network and
  on a randomly initialised copy of it (Adebayo et al., NeurIPS 2018, "Sanity checks for saliency maps");
- ``timing-<model>``: each method timed call by call interleaved with a plain forward pass, at batch 1 and
  batched.

Every map comes from :class:`~camrepro.experiments.kit.maps.MapStore`, so the maps of the trained networks
are computed once per build and shared with the chapters that explain the same photos the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from camrepro import metrics, models
from camrepro.experiments.chapter import Unit
from camrepro.experiments.kit import grids as kit_grids
from camrepro.experiments.kit import images as kit_images
from camrepro.experiments.benchmark.params import inputs as chapter_inputs
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit import metric_tables, predictions, timing
from camrepro.experiments.kit.maps import MapStore, build
from camrepro.experiments.sharding import Sharding

FAITHFULNESS_COLUMNS = ["model", "method", "image", "p", "o", "AD", "AI", "AG", "all_zero"]
INSERTION_COLUMNS = ["model", "method", "image", "insertion", "deletion"]
GRID_COLUMNS = ["model", "method", "grid", "quadrant", "hit", "energy"]
RANDOMISATION_COLUMNS = ["model", "method", "image", "rank_correlation", "all_zero_trained",
                         "all_zero_random"]
TIMING_COLUMNS = ["model", "method", "batch", "round", "call", "seconds", "load"]


def photos_of(params: Mapping[str, object], name: str) -> int:
    """How many photos (the first ones) method ``name`` explains."""
    n = params["images"]["n"]
    return min(n, params["method_images"].get(name, n))


def random_model_name(model: str, seed: int) -> str:
    """The map store's name of the randomly initialised ``model``: the store keys maps by the model's name,
    not its weights, so the random network's maps must never meet the trained ones."""
    return f"{model}-random-init-seed{seed}"


def load_random(model: str, seed: int, device: torch.device) -> nn.Module:
    """``model``'s architecture with random weights drawn from ``seed`` (the global generator is left as
    it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net, _ = models.load(model, weights=False, device=device)
    return net


class _Setting:
    """A network, its default layer, the photos (those at ``positions``: a rank's shard) and their predicted
    classes."""

    def __init__(self, model: str, params: Mapping[str, object], device: str,
                 positions: Sequence[int] | None = None):
        self.model, self.params = model, params
        self.positions = positions
        self.device = torch.device(device)
        self.net, _ = models.load(model, weights=kit_inputs.weights_for(params, model), device=self.device)
        self.layer = models.default_layer(model)
        self.photos = kit_images.load(params["images"]).subset(positions)
        self.images = self.photos.batch().to(self.device)
        self.classes, self.probabilities = predictions.predict(self.net, self.images)

    def store(self, name: str, net: nn.Module | None = None, model: str | None = None) -> MapStore:
        options = self.params["method_options"].get(name, {})
        return MapStore(build(name, net or self.net, self.layer, options), model or self.model, name, options)

    def first(self, cap: int) -> int:
        """How many of this setting's photos are among the unit's first ``cap``."""
        return kit_images.among_first(cap, self.positions, self.params["images"]["n"])

    def maps(self, name: str, count: int):
        """The stored (or computed) maps of method ``name`` on the first ``count`` photos."""
        return self.store(name).get(self.images[:count], self.classes[:count], chunk=self.params["chunk"])


def maps_shard(model: str, params: Mapping[str, object], device: str,
               positions: Sequence[int] | None = None) -> dict[str, object]:
    """The ``maps-<model>`` unit's outputs for the photos at ``positions`` (None: all), with the insertion /
    deletion curves per photo (:func:`mean_curves` averages them once every photo is in)."""
    s = _Setting(model, params, device, positions)
    names = s.photos.names
    faithfulness, insertion, curves = [], [], {}
    n_examples = s.first(params["examples"])
    examples = {"images": s.images[:n_examples].cpu().numpy().astype(np.float16)}
    steps = params["insertion_deletion"]["steps"]
    for name in params["methods"]:
        m = s.first(photos_of(params, name))
        if m == 0:
            continue
        stored = s.maps(name, m)
        maps = stored.maps.to(s.device)
        rows = metric_tables.faithfulness_rows(s.net, s.images[:m], maps, s.classes[:m], names[:m])
        rows.insert(0, "method", name)
        rows.insert(0, "model", model)
        rows["all_zero"] = stored.all_zero.astype(bool)
        faithfulness.append(rows)
        k = min(s.first(params["insertion_deletion"]["images"]), m)
        if k:
            auc = {}
            for mode in ("insertion", "deletion"):
                res = metrics.insertion_deletion(s.net, s.images[:k], maps[:k], s.classes[:k], mode=mode,
                                                 steps=steps)
                auc[mode] = np.asarray(res["auc_per_image"], dtype=float)
                curves[f"{name}|{mode}"] = np.asarray(res["curves"], dtype=float)
            insertion.append(pd.DataFrame({"model": model, "method": name, "image": names[:k], **auc}))
        examples[name] = stored.maps[:n_examples].numpy().astype(np.float16)
    return {
        "predictions": predictions.prediction_table(model, names, s.classes.cpu(), s.probabilities.cpu()),
        "faithfulness": _frame(faithfulness, FAITHFULNESS_COLUMNS),
        "insertion_deletion": _frame(insertion, INSERTION_COLUMNS),
        "curves": curves,
        "examples": examples,
    }


def mean_curves(outputs: Mapping[str, object]) -> dict[str, object]:
    """The mean insertion / deletion curve of each method over its photos (the curves arrive per photo)."""
    return {**outputs, "curves": {k: v.mean(0) for k, v in outputs["curves"].items()}}


def compute_maps(model: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    return mean_curves(maps_shard(model, params, device))


def compute_grids(model: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    n_grids = params["grids"]["n"]
    rows = []
    if n_grids:
        s = _Setting(model, params, device)
        task = kit_grids.grid_task(s.images, s.classes, n_grids, seed=params["images"]["seed"])
        images, targets = task.images.to(s.device), task.targets.to(s.device)
        for name in params["methods"]:
            count = 4 * min(n_grids, params["grids"]["method_grids"].get(name, n_grids))
            if count == 0:
                continue
            stored = s.store(name).get(images[:count], targets[:count], chunk=params["chunk"])
            table = kit_grids.grid_rows(task, stored.maps)
            table.insert(0, "method", name)
            table.insert(0, "model", model)
            rows.append(table)
    return {"grid": _frame(rows, GRID_COLUMNS)}


def compute_randomisation(model: str, params: Mapping[str, object], device: str,
                          positions: Sequence[int] | None = None) -> dict[str, object]:
    section = params["randomisation"]
    rows = []
    counts = {name: kit_images.among_first(
        min(section["images"], section["method_images"].get(name, section["images"]), photos_of(params, name)),
        positions, params["images"]["n"]) for name in section["methods"]}
    if any(counts.values()):
        s = _Setting(model, params, device, positions)
        random_net = load_random(model, section["seed"], s.device)
        random_name = random_model_name(model, section["seed"])
        for name, k in counts.items():
            if k == 0:
                continue
            trained = s.maps(name, k)
            randomised = s.store(name, net=random_net, model=random_name).get(
                s.images[:k], s.classes[:k], chunk=params["chunk"])
            # NaN where either map is constant (an all-zero map has no ranking): counted, left out of means
            rho = metrics.map_rank_correlation(trained.maps, randomised.maps).numpy()
            rows.append(pd.DataFrame({"model": model, "method": name, "image": s.photos.names[:k],
                                      "rank_correlation": rho,
                                      "all_zero_trained": trained.all_zero.astype(bool),
                                      "all_zero_random": randomised.all_zero.astype(bool)}))
    return {"randomisation": _frame(rows, RANDOMISATION_COLUMNS)}


def compute_timing(model: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    section = params["timing"]
    rows, costs = [], []
    if section["methods"]:
        s = _Setting(model, params, device)
        for name in section["methods"]:
            explainer = build(name, s.net, s.layer, params["method_options"].get(name, {}))
            costs.append({"model": model, "method": name, "passes": type(explainer).forward_passes})
            for batch in sorted({1, min(section["batch"], s.photos.count)}):
                x, t = s.images[:batch], s.classes[:batch]

                def forward(x=x):
                    with torch.no_grad():
                        s.net(x)

                calls = {"method": lambda e=explainer, x=x, t=t: e(x, t), "forward": forward}
                times = timing.interleaved(calls, rounds=section["rounds"], per_call=batch, device=s.device)
                times.insert(0, "batch", batch)
                times.insert(0, "method", name)
                times.insert(0, "model", model)
                rows.append(times)
    return {"timing": _frame(rows, TIMING_COLUMNS),
            "costs": pd.DataFrame(costs, columns=["model", "method", "passes"])}


def _frame(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


_SHARED = ("images", "methods", "method_options", "method_images", "chunk")
_KINDS = {
    "maps": (compute_maps, ("insertion_deletion", "examples")),
    "grid": (compute_grids, ("grids",)),
    "randomisation": (compute_randomisation, ("randomisation",)),
    "timing": (compute_timing, ("timing",)),
}


def sharding(kind: str, model: str, params: Mapping[str, object]) -> Sharding | None:
    """How the ``<kind>-<model>`` unit splits its photos over the ranks of a torchrun launch (None for the
    grid and timing units, which rank 0 computes: a grid is made of four photos, and timings compare calls
    made in one process)."""
    def photos() -> list[str]:
        return kit_images.load(params["images"]).names

    if kind == "maps":
        return Sharding(photos, lambda device, positions: maps_shard(model, params, device, positions),
                        groups={"faithfulness": ("method",), "insertion_deletion": ("method",)},
                        per_image_arrays=("curves", "examples"), finish=mean_curves)
    if kind == "randomisation":
        return Sharding(photos,
                        lambda device, positions: compute_randomisation(model, params, device, positions),
                        groups={"randomisation": ("method",)})
    return None


def units(params: dict[str, object]) -> list[Unit]:
    """Four units per network (see the module's docstring), each with the parameters its result depends on.
    Under torchrun the maps and randomisation units are split over the ranks by photo; grid and timing run
    on rank 0 while the other ranks wait."""
    out = []
    fingerprints = kit_inputs.contents("benchmark", chapter_inputs(params))
    for kind, (compute, keys) in _KINDS.items():
        for model in params["models"]:
            unit_params = kit_inputs.keyed({"model": model, **{k: params[k] for k in (*_SHARED, *keys)}},
                                           fingerprints, model)
            split = sharding(kind, model, params)
            whole = split.whole if split else (lambda device, f=compute, m=model: f(m, params, device))
            out.append(Unit(name=f"{kind}-{model}", params=unit_params, compute=whole,
                            per_image=split is not None, sharding=split))
    return out
