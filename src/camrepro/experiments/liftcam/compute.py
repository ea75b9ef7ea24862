"""The liftcam chapter's compute units.

Per (model, layer kind):

- ``maps-<model>-<kind>``: every method's maps on the photos (through the map store, so a map another
  chapter computed is read, not recomputed), Average Drop / Increase / Gain (pixel-space masking),
  insertion / deletion AUC, and the grid pointing game; one row per photo (per grid map);
- ``shap-<model>-<kind>``: ground-truth SHAP values of the activation maps on the first ``shap.images``
  photos, by Monte-Carlo permutation sampling in two independent halves (their agreement measures the
  sampling noise), each method's coefficients (from the map store) against them, LIFT-CAM's completeness,
  and each photo's SHAP sampling timed against LIFT-CAM and a forward pass on the same photo.

Per model, ``timing-<model>``: batch-1 timing, interleaved call by call (forward, LIFT-CAM, Grad-CAM for
``timing.rounds`` rounds at every layer kind; LIFT-CAM, Score-CAM, LIME-CAM for ``timing.slow_rounds`` rounds
at ``timing.slow_layer``), and each cheap method's network passes and FLOPs per image.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import torch

from camrepro import cache, methods, metrics, models
from camrepro.experiments.chapter import Unit
from camrepro.experiments.kit import grids, images, maps, metric_tables, predictions, timing
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.liftcam.cost import count_network_passes, forward_equivalents
from camrepro.experiments.liftcam.params import (
    LIFT, SAMPLING, configurations, grids_of, images_of, layer_of, options_of,
)
from camrepro.experiments.liftcam.params import inputs as chapter_inputs
from camrepro.metrics.channel_shap import permutation_shap

RULES = {"linear": "gradient (linear)", "elementwise": "Rescale", "max_pool": "max-pooling rule",
         "product": "product rule"}
FAST_CALLS = ("forward", LIFT, "grad-cam")


def build(name: str, net: torch.nn.Module, layer: str, options: dict[str, object] | None = None):
    """The method ``name`` on ``net`` at ``layer`` with ``options``."""
    return methods.get(name)(net, layer, **dict(options or {}))


def _setup(model_name: str, params: dict[str, object], device: str, count: int | None = None):
    dev = torch.device(device)
    net, _ = models.load(model_name, weights=kit_inputs.weights_for(params, model_name), device=dev)
    photos = images.load(params["images"])
    x = photos.batch(0, count).to(dev)
    targets, probs = predictions.predict(net, x)
    return net, photos.names[:x.shape[0]], x, targets, probs


@functools.cache
def _code() -> str:
    # The source hash once per process: every map of one build is keyed by the same code, so the SHAP unit
    # reads the coefficients the maps unit stored even if a source file changes during the build.
    return cache.source_hash()


def _store(net, model_name: str, layer: str, name: str, params: dict[str, object]) -> maps.MapStore:
    options = options_of(params, name)
    return maps.MapStore(build(name, net, layer, options), model_name, name, options, code=_code())


# -------------------------------------------------------------------------------------------- maps unit
def maps_unit(model_name: str, kind: str, params: dict[str, object], device: str) -> dict[str, object]:
    """Faithfulness (AD/AI/AG, insertion/deletion) per photo and the grid pointing game per grid map."""
    net, names, x, targets, probs = _setup(model_name, params, device)
    layer = layer_of(model_name, kind)
    linear = build(LIFT, net, layer, options_of(params, LIFT)).plan.is_linear()
    base = {"model": model_name, "layer_kind": kind, "layer": layer, "tail_is_linear": linear}
    task = grids.grid_task(x.cpu(), targets.cpu(), params["grids"]["n"], seed=params["grids"]["seed"])
    faith_rows, grid_tables = [], []
    n_examples = min(params["examples"], x.shape[0])
    examples = {"images": x[:n_examples].cpu().numpy().astype(np.float16)}
    for name in params["methods"]:
        store = _store(net, model_name, layer, name, params)
        n = images_of(params, name)
        if n:
            got = store.get(x[:n], targets[:n], chunk=params["chunk"])
            faith = metric_tables.faithfulness_rows(net, x[:n], got.maps, targets[:n], names[:n])
            auc = metric_tables.insertion_deletion_rows(net, x[:n], got.maps, targets[:n], names[:n],
                                                        steps=params["insertion_steps"])
            faith = faith.merge(auc, on="image")
            faith.insert(0, "method", name)
            faith["all_zero"] = got.all_zero
            faith_rows.append(faith)
            examples[name] = got.maps[:n_examples].numpy().astype(np.float16)
        g = grids_of(params, name) * 4
        if g and task.count:
            got = store.get(task.images[:g].to(x.device), task.targets[:g], chunk=params["chunk"])
            rows = grids.grid_rows(task, got.maps)
            rows.insert(0, "method", name)
            rows["all_zero"] = got.all_zero
            grid_tables.append(rows)
    prediction = predictions.prediction_table(model_name, names, targets.cpu(), probs.cpu())
    prediction.insert(1, "layer_kind", kind)
    faithfulness = pd.concat(faith_rows, ignore_index=True)
    grid = (pd.concat(grid_tables, ignore_index=True) if grid_tables else
            pd.DataFrame(columns=["method", "grid", "quadrant", "hit", "energy", "all_zero"]))
    for table in (faithfulness, grid):
        for i, (key, value) in enumerate(base.items()):
            table.insert(i, key, value)
    return {"predictions": prediction, "faithfulness": faithfulness, "grid": grid, "examples": examples}


# -------------------------------------------------------------------------------------------- SHAP unit
def _sample_shap(lift, image: torch.Tensor, target: torch.Tensor, shap: dict[str, int]):
    """The two independent halves of an image's permutation SHAP values (the forward pass that captures
    the activations included, as a SHAP sampler from the image needs it)."""
    acts = lift.contributions(image, target).activations
    half = shap["permutations"] // 2
    return [permutation_shap(lift.plan, acts, target, n_permutations=half, seed=shap["seed"] + h)
            for h in (0, 1)]


def shap_unit(model_name: str, kind: str, params: dict[str, object], device: str) -> dict[str, object]:
    """SHAP values of the activation maps, each method's agreement with them, and SHAP's cost per photo."""
    shap = params["shap"]
    net, names, x, targets, _ = _setup(model_name, params, device, count=shap["images"])
    layer = layer_of(model_name, kind)
    base = {"model": model_name, "layer_kind": kind, "layer": layer}
    lift = build(LIFT, net, layer, options_of(params, LIFT))

    def forward(image: torch.Tensor) -> None:
        with torch.no_grad():
            net(image)

    forward(x[:1])
    lift(x[:1], targets[:1])                        # warm-up: first-call overheads are not a cost
    values, errors, split, time_tables = [], [], [], []
    for i in range(x.shape[0]):
        image, target = x[i:i + 1], targets[i:i + 1]
        out: dict[str, object] = {}
        calls = {"forward": lambda: forward(image), LIFT: lambda: lift(image, target),
                 "shap": lambda: out.update(halves=_sample_shap(lift, image, target, shap))}
        times = timing.interleaved(calls, rounds=1, warmup=False, device=x.device)
        time_tables.append(times.assign(round=i, image=names[i]))
        first, second = out["halves"]
        values.append((first.values + second.values) / 2)
        errors.append((first.stderr.square() + second.stderr.square()).sqrt() / 2)
        split.append(float(metrics.coefficient_agreement(first.values, second.values)["spearman"][0]))
    values, errors = torch.cat(values), torch.cat(errors)
    contributions = lift.contributions(x, targets)
    gap = contributions.coefficients.sum(1) - (contributions.output - contributions.reference_output)
    norm = values.norm(dim=1)
    quality = pd.DataFrame({
        **base, "image": names, "target": targets.tolist(), "channels": values.shape[1],
        "permutations": shap["permutations"], "tail_is_linear": lift.plan.is_linear(),
        "output_difference": values.sum(1).numpy(),
        "mean_stderr": errors.mean(1).numpy(), "max_abs_value": values.abs().amax(1).numpy(),
        # the normalised error sampling noise alone gives a perfect estimator
        "relative_error_floor": (errors.norm(dim=1) / norm.clamp_min(1e-300)).numpy(),
        "split_half_spearman": split,
        "lift_completeness_error": gap.abs().detach().cpu().double().numpy(),
        # a CAM weights maps meant to be non-negative (after a ReLU); a signed layer changes what
        # ReLU(Σ_k φ_k A_k) shows, whatever the coefficients
        "negative_share": (contributions.activations < 0).double().mean((1, 2, 3)).cpu().numpy()})
    agreement_rows = []
    coefficients = {"shap": values.numpy(), "shap_stderr": errors.numpy()}
    for name in params["methods"]:
        n = min(images_of(params, name), x.shape[0])
        if not n:
            continue
        got = _store(net, model_name, layer, name, params).get(x[:n], targets[:n], chunk=params["chunk"],
                                                               weights=True)
        agree = metrics.coefficient_agreement(got.weights.double(), values[:n])
        agreement_rows.append(pd.DataFrame({**base, "method": name, "image": names[:n],
                                            **{k: v.numpy() for k, v in agree.items()}}))
        coefficients[name.replace("+", "p")] = got.weights.double().numpy()
    tail = pd.DataFrame([{**base, "step": i, "operation": operation, "rule": RULES.get(rule, rule)}
                         for i, (operation, rule) in enumerate(lift.plan.describe())])
    times = pd.concat(time_tables, ignore_index=True)
    for i, (key, value) in enumerate(base.items()):
        times.insert(i, key, value)
    return {"shap": quality, "agreement": pd.concat(agreement_rows, ignore_index=True), "tail": tail,
            "shap_timing": times, "coefficients": coefficients}


# ------------------------------------------------------------------------------------------ timing unit
def timing_unit(model_name: str, params: dict[str, object], device: str) -> dict[str, object]:
    """Batch-1 times, interleaved call by call, and network passes / FLOPs per image of the cheap methods."""
    net, names, x, targets, _ = _setup(model_name, params, device, count=1)
    image, target = x[:1], targets[:1]
    time_tables, cost_rows = [], []
    kinds = [k for m, k in configurations(params) if m == model_name]

    def forward() -> None:
        with torch.no_grad():
            net(image)

    for kind in kinds:
        layer = layer_of(model_name, kind)
        built = {name: build(name, net, layer, options_of(params, name)) for name in params["methods"]}
        fast = {"forward": forward} | {n: (lambda m=built[n]: m(image, target)) for n in FAST_CALLS[1:]
                                       if n in built}
        times = timing.interleaved(fast, rounds=params["timing"]["rounds"], device=x.device)
        time_tables.append(times.assign(layer_kind=kind, layer=layer, set="fast"))
        slow = [n for n in SAMPLING if n in built]
        if kind == params["timing"]["slow_layer"] and slow:
            # no warm-up call: each costs seconds, and LIFT-CAM is warm from the fast rounds
            calls = {n: (lambda m=built[n]: m(image, target)) for n in (LIFT, *slow)}
            times = timing.interleaved(calls, rounds=params["timing"]["slow_rounds"], warmup=False,
                                       device=x.device)
            time_tables.append(times.assign(layer_kind=kind, layer=layer, set="slow"))
        for name, method in built.items():
            if name in SAMPLING:   # one pass per channel or a K × K solve: counted by its formula only
                passes, equivalents = math.nan, math.nan
            else:
                with count_network_passes(net) as counted:
                    method(image, target)
                passes, equivalents = counted["rows"], forward_equivalents(method, net, image, target)
            cost_rows.append({"model": model_name, "layer_kind": kind, "layer": layer, "method": name,
                              "network_passes_per_image": passes, "flops_in_forwards": equivalents,
                              "cost_formula": type(method).forward_passes})
    times = pd.concat(time_tables, ignore_index=True)
    times.insert(0, "model", model_name)
    times["image"] = names[0]
    return {"timing": times, "cost": pd.DataFrame(cost_rows)}


# --------------------------------------------------------------------------------------------- the units
def _section(params: dict[str, object], *keys: str) -> dict[str, object]:
    return {k: params[k] for k in keys}


def units(params: dict[str, object]) -> list[Unit]:
    """The chapter's units, in the order they run (maps first, so the SHAP unit reads their coefficients)."""
    out = []
    common = ("images", "methods", "method_images", "method_options", "chunk")
    fingerprints = kit_inputs.contents("liftcam", chapter_inputs(params))
    for model_name, kind in configurations(params):
        where = {"model": model_name, "layer_kind": kind}
        maps_key = {**_section(params, *common, "insertion_steps", "grids", "method_grids", "examples"),
                    **where}
        out.append(Unit(f"maps-{model_name}-{kind}", kit_inputs.keyed(maps_key, fingerprints, model_name),
                        lambda device, m=model_name, k=kind: maps_unit(m, k, params, device), per_image=True))
        shap_key = {**_section(params, *common, "shap"), **where}
        out.append(Unit(f"shap-{model_name}-{kind}", kit_inputs.keyed(shap_key, fingerprints, model_name),
                        lambda device, m=model_name, k=kind: shap_unit(m, k, params, device), per_image=True))
    for model_name in params["models"]:
        timing_key = {**_section(params, "images", "methods", "method_options", "layers", "timing"),
                      "model": model_name}
        out.append(Unit(f"timing-{model_name}", kit_inputs.keyed(timing_key, fingerprints, model_name),
                        lambda device, m=model_name: timing_unit(m, params, device)))
    return out
