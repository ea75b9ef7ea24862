"""The A-FMI chapter's compute units, one per experiment and model; every map comes from the map store.

- ``insensitivity-<model>``: the maps of A-FMI, integrated gradients, DeepLIFT and LIFT-CAM under every
  reference, and per photo and pair of references their agreement (:func:`cross_reference_agreement`);
  A-FMI's completeness per photo and reference.
- ``faithfulness-<model>``: AD, AI, AG, insertion and deletion AUC per photo of every method (the layer
  methods at the first layer choice).
- ``grids-<model>``: the grid pointing game, one row per grid map (the claims average each grid's four).
- ``saturation-<model>``: the most confident photos of a pool explained through softmax(T · logits) by
  Grad-CAM and A-FMI, per photo and temperature.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from camrepro import methods, metrics, models
from camrepro.experiments.afmi.agreement import (
    SoftmaxOutput, completeness_rows, cross_reference_agreement, other_photo,
)
from camrepro.experiments.afmi.params import (
    CHAPTER, INPUT, OTHER_PHOTO, layer_for, method_layers, method_options,
)
from camrepro.experiments.afmi.params import inputs as chapter_inputs
from camrepro.experiments.chapter import Unit
from camrepro.experiments.kit import images as kit_images
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit.grids import grid_rows, grid_task
from camrepro.experiments.kit.maps import MapStore, StoredMaps
from camrepro.experiments.kit.metric_tables import faithfulness_rows, insertion_deletion_rows
from camrepro.experiments.kit.predictions import predict, prediction_table
from camrepro.methods.base import Explainer
from camrepro.methods.references import make_reference


def _float16(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float16)


class _Setting:
    """One model on one device with the chapter's photos, their predicted classes and the other-photo
    reference."""

    def __init__(self, model_name: str, params: Mapping[str, object], device: str, n: int | None = None):
        self.model_name, self.params = model_name, params
        self.device = torch.device(device)
        self.net, _ = models.load(model_name, weights=kit_inputs.weights_for(params, model_name),
                                  device=self.device)
        photos = kit_images.load(dict(params["images"]))
        count = photos.count if n is None else min(n, photos.count)
        self.images = photos.batch(0, count).to(self.device)
        self.names = photos.names[:count]
        self.targets, self.probs = predict(self.net, self.images)
        refs = params["references"]
        self.other = other_photo(refs["other_photo"], self.images.shape[-1]).to(self.device)

    def reference_images(self, images: torch.Tensor, reference: str) -> torch.Tensor:
        refs = self.params["references"]
        spec = self.other if reference == OTHER_PHOTO else reference
        return make_reference(images, spec, blur_sigma=float(refs["blur_sigma"]),
                              noise_seed=int(refs["noise_seed"]))

    def maps(self, name: str, choice: str, reference: str | None, images: torch.Tensor, targets: torch.Tensor,
             section: Mapping[str, object] | None = None, *, weights: bool = False) -> StoredMaps:
        """The stored (or computed) maps of method ``name`` at layer choice ``choice`` under ``reference``."""
        layer = None if choice == INPUT else layer_for(self.model_name, choice)
        constructor, key = method_options(name, reference, self.params, section, self.other)
        explainer = methods.get(name)(self.net, layer, **constructor)
        store = MapStore(explainer, self.model_name, name, key)
        return store.get(images, targets, chunk=self.params["chunk"], weights=weights)

    def predictions(self) -> pd.DataFrame:
        return prediction_table(self.model_name, self.names, self.targets.cpu(), self.probs.cpu())


def insensitivity(model_name: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    section = params["insensitivity"]
    s = _Setting(model_name, params, device, n=section["images"])
    references = params["references"]["names"]
    pair_frames, completeness, counts = [], [], []
    example: dict[str, np.ndarray] = {"image": _float16(s.images[:1])}
    for reference in references:
        example[f"reference|{reference}"] = _float16(s.reference_images(s.images[:1], reference))
    for name in section["methods"]:
        for choice in method_layers(name, params["layers"]):
            maps: dict[str, torch.Tensor] = {}
            for reference in references:
                stored = s.maps(name, choice, reference, s.images, s.targets, section,
                                weights=name == "a-fmi")
                maps[reference] = stored.maps
                counts.append({"model": model_name, "method": name, "layer": choice, "reference": reference,
                               "maps": int(stored.maps.shape[0]), "all_zero": int(stored.all_zero.sum())})
                if name == "a-fmi":
                    check = completeness_rows(s.net, layer_for(model_name, choice), s.images,
                                              s.reference_images(s.images, reference), s.targets,
                                              stored.weights, chunk=params["chunk"])
                    completeness.append(check.assign(model=model_name, layer=choice, reference=reference,
                                                     image=s.names))
                example[f"map|{name}|{choice}|{reference}"] = _float16(stored.maps[:1])
            pairs = cross_reference_agreement(maps, float(section["topk_fraction"]),
                                              int(section["pooled_size"]))
            pairs["image"] = [s.names[i] for i in pairs["image"]]
            pair_frames.append(pairs.assign(model=model_name, method=name, layer=choice))
    return {"predictions": s.predictions(), "pairs": pd.concat(pair_frames, ignore_index=True),
            "completeness": pd.concat(completeness, ignore_index=True) if completeness else pd.DataFrame(),
            "maps": pd.DataFrame(counts), "example": example}


def _reference_of(name: str, reference: str) -> str | None:
    """The reference a method is given in the faithfulness and grid experiments: the chapter's reference for
    A-FMI and the pixel attributions, none for Grad-CAM (it takes none) and LIFT-CAM (its paper's all-zero
    activations), so that those maps are the other chapters' default maps."""
    return reference if name in ("a-fmi", "integrated-gradients", "deeplift") else None


def faithfulness(model_name: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    section = params["faithfulness"]
    s = _Setting(model_name, params, device)
    primary = params["layers"][0]
    frames = []
    for name in section["methods"]:
        choice = method_layers(name, [primary])[0]
        stored = s.maps(name, choice, _reference_of(name, section["reference"]), s.images, s.targets)
        scores = faithfulness_rows(s.net, s.images, stored.maps, s.targets, s.names)
        aucs = insertion_deletion_rows(s.net, s.images, stored.maps, s.targets, s.names,
                                       steps=section["insertion_steps"])
        frames.append(scores.merge(aucs, on="image").assign(model=model_name, method=name, layer=choice,
                                                            all_zero=stored.all_zero))
    return {"predictions": s.predictions(), "faithfulness": pd.concat(frames, ignore_index=True)}


def grids(model_name: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    section = params["grids"]
    s = _Setting(model_name, params, device)
    task = grid_task(s.images.cpu(), s.targets.cpu(), section["n"], seed=section["seed"])
    images, targets = task.images.to(s.device), task.targets.to(s.device)
    frames = []
    for name in section["methods"]:
        for choice in method_layers(name, params["layers"]):
            reference = _reference_of(name, params["faithfulness"]["reference"])
            stored = s.maps(name, choice, reference, images, targets)
            frames.append(grid_rows(task, stored.maps).assign(model=model_name, method=name, layer=choice,
                                                              target=task.targets.numpy(),
                                                              all_zero=stored.all_zero))
    return {"grid": pd.concat(frames, ignore_index=True)}


def _wrapped_maps(explainer: Explainer, model_label: str, name: str, options: dict[str, object],
                  images: torch.Tensor, targets: torch.Tensor, chunk: int) -> StoredMaps:
    return MapStore(explainer, model_label, name, options).get(images, targets, chunk=chunk, weights=True)


def saturation(model_name: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    section = params["saturation"]
    dev = torch.device(device)
    net, _ = models.load(model_name, weights=kit_inputs.weights_for(params, model_name), device=dev)
    pool = kit_images.load({**params["images"], "n": section["pool"]})
    pool_images = pool.batch().to(dev)
    pool_targets, pool_probs = predict(net, pool_images)
    chosen = torch.argsort(pool_probs.cpu(), descending=True)[:section["images"]].sort().values
    images, targets = pool_images[chosen.to(dev)], pool_targets[chosen.to(pool_targets.device)]
    names = [pool.names[i] for i in chosen.tolist()]
    # The last convolution: its tail is pool + fc, so the softmax is the only non-linearity after the layer
    # and any saturation seen here is the saturation of the probability.
    layer = models.MODELS[model_name].default_layer
    refs = params["references"]
    other = other_photo(refs["other_photo"], images.shape[-1]).to(dev)
    constructor, key = method_options("a-fmi", section["reference"], params, None, other)
    constructor["steps"] = key["steps"] = section["steps"]
    spec = other if section["reference"] == OTHER_PHOTO else section["reference"]
    reference_images = make_reference(images, spec, blur_sigma=float(refs["blur_sigma"]),
                                      noise_seed=int(refs["noise_seed"]))
    chunk = params["chunk"]
    logit_maps = {
        "grad-cam": MapStore(methods.get("grad-cam")(net, layer), model_name, "grad-cam", {})
        .get(images, targets, chunk=chunk).maps,
        "a-fmi": MapStore(methods.get("a-fmi")(net, layer, **constructor), model_name, "a-fmi", key)
        .get(images, targets, chunk=chunk).maps,
    }
    example: dict[str, np.ndarray] = {"image": _float16(images[:1])}
    for name, maps in logit_maps.items():
        example[f"map|{name}|logit"] = _float16(maps[:1])
    rows = []
    for temperature in section["temperatures"]:
        wrapped: nn.Module = SoftmaxOutput(net, float(temperature))
        label, wrapped_layer = f"{model_name}@softmax-T{float(temperature):g}", f"net.{layer}"
        grad_cam = _wrapped_maps(methods.get("grad-cam")(wrapped, wrapped_layer), label, "grad-cam", {},
                                 images, targets, chunk)
        afmi = _wrapped_maps(methods.get("a-fmi")(wrapped, wrapped_layer, **constructor), label, "a-fmi", key,
                             images, targets, chunk)
        check = completeness_rows(wrapped, wrapped_layer, images, reference_images, targets, afmi.weights,
                                  chunk)
        nan = np.full(len(names), np.nan)
        per_method = {
            "grad-cam": (grad_cam, grad_cam.weights.abs().mean(dim=1).double().numpy(), nan, nan),
            "a-fmi": (afmi, nan, check["sum_phi"].to_numpy(), check["relative_gap"].to_numpy()),
        }
        for name, (stored, gradient, sum_phi, gap) in per_method.items():
            rho = metrics.map_rank_correlation(stored.maps, logit_maps[name]).numpy()
            deletion = metrics.insertion_deletion(net, images, stored.maps.to(dev), targets, mode="deletion",
                                                  steps=section["deletion_steps"])["auc_per_image"]
            rows.append(pd.DataFrame({
                "model": model_name, "temperature": float(temperature), "method": name, "image": names,
                "probability": check["score"].to_numpy(),
                "probability_is_one": check["score"].to_numpy() == 1.0,
                "probability_change": (check["score"] - check["reference_score"]).to_numpy(),
                "gradient": gradient, "sum_phi": sum_phi, "relative_gap": gap,
                "rank_correlation_with_logit_map": rho, "deletion_auc": np.asarray(deletion, dtype=float),
                "all_zero": stored.all_zero}))
            example[f"map|{name}|T={float(temperature):g}"] = _float16(stored.maps[:1])
    return {"saturation": pd.concat(rows, ignore_index=True), "example": example}


def units(params: dict[str, object]) -> list[Unit]:
    """The chapter's units; each depends only on the parameters its experiment reads."""
    shared = {k: params[k] for k in ("images", "chunk", "method_options", "references", "layers")}
    fingerprints = kit_inputs.contents(CHAPTER, chapter_inputs(params))
    out: list[Unit] = []
    for model_name in params["models"]:
        for unit, compute, keys in (("insensitivity", insensitivity, ("insensitivity",)),
                                    ("faithfulness", faithfulness, ("faithfulness",)),
                                    ("grids", grids, ("grids", "faithfulness"))):
            unit_params = kit_inputs.keyed({**shared, **{k: params[k] for k in keys}, "model": model_name},
                                           fingerprints, model_name)
            out.append(Unit(f"{unit}-{model_name}", unit_params,
                            lambda device, c=compute, m=model_name: c(m, params, device),
                            per_image=unit == "faithfulness"))
    for model_name in params["saturation"]["models"]:
        unit_params = kit_inputs.keyed({**shared, "saturation": params["saturation"], "model": model_name},
                                       fingerprints, model_name)
        out.append(Unit(f"saturation-{model_name}", unit_params,
                        lambda device, m=model_name: saturation(m, params, device)))
    return out
