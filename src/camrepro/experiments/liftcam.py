"""The ``liftcam`` chapter: how well CAM coefficients approximate the SHAP values of the activation maps, how
faithful the resulting maps are, and what they cost (Jung & Oh, "Towards Better Explanations of Class
Activation Mapping", ICCV 2021).

For each model and each layer kind — ``last`` (the model's last convolutional layer; for MobileNetV2 and
EfficientNet-Lite0 its tail is global average pooling + a fully connected layer, linear, as ResNet-50's in the
paper) and ``nonlinear`` (an earlier layer whose tail holds a convolution, batch-norm and ReLU6, non-linear as
VGG16's tail with its max-pooling and ReLUs) — on packaged photos, with the predicted class as the target:

1. ground-truth SHAP values of the K activation maps by Monte-Carlo permutation sampling
   (:func:`camrepro.metrics.channel_shap.permutation_shap`, antithetic orders, with standard errors) on the
   first ``shap_images`` photos, and the agreement (Spearman rank correlation, normalised error, cosine) of
   every method's coefficients with them;
2. Average Drop / Increase / Gain (pixel-space masking), deletion and insertion AUC, and the grid pointing
   game on 2×2 grids of photos of four predicted classes;
3. time per image at batch 1 and batched, next to a plain forward pass; the number of network passes per
   image (counted with a hook on the network) and the cost in forward-pass equivalents of floating-point
   operations (counted with ``torch.utils.flop_counter`` on one image, forward and backward together);
4. example maps and each method's coefficients against the SHAP values on one image.

Methods listed in ``max_images`` (Score-CAM: one network pass per channel) run on that many photos only, and
those in ``max_grid_maps`` on that many grid maps; every table keeps one row per image, so the number of
images behind each figure is visible.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from camrepro import cache, metrics, methods, models
from camrepro.data.grid import make_grids
from camrepro.data.photos import load_photos
from camrepro.experiments.parameters import check_count, check_models, check_required
from camrepro.experiments import explaining
from camrepro.methods.base import Explainer, normalize_maps, upsample
from camrepro.metrics.channel_shap import permutation_shap

CHAPTER = "liftcam"
LAYER_KINDS = {"last": "default_layer", "nonlinear": "nonlinear_tail_layer"}
REQUIRED = ("models", "layers", "methods", "photo_source", "image_size", "n_images", "seed", "shap_images",
            "shap_permutations", "insertion_steps", "n_grids", "max_images", "max_grid_maps",
            "method_options", "timing_images", "timing_repeats", "chunk", "n_examples")
PAPER = "LIFT-CAM"
# The methods the paper's claims compare LIFT-CAM with (those of the run that are in this list).
OTHER_CAMS = ("lrp-cam", "lime-cam", "grad-cam", "grad-cam++", "xgrad-cam", "score-cam")


# ---------------------------------------------------------------------------------------------- parameters
def check_params(params: Mapping[str, object]) -> dict[str, object]:
    """The chapter's parameters, checked: every key of :data:`REQUIRED`, known models, layer kinds and
    methods."""
    check_required(CHAPTER, params, REQUIRED)
    check_models(CHAPTER, "models", params["models"])
    kinds = [k for k in params["layers"] if k not in LAYER_KINDS]
    if kinds:
        raise ValueError(f"unknown layer kinds {kinds}; expected some of {sorted(LAYER_KINDS)}")
    for name in params["methods"]:
        methods.get(name)  # a ValueError naming the known methods
    if "lift-cam" not in params["methods"]:
        raise ValueError("the liftcam chapter compares every method with lift-cam: list it in 'methods'")
    for key in ("image_size", "n_images", "shap_images", "shap_permutations", "insertion_steps", "n_grids",
                "timing_images", "timing_repeats", "chunk", "n_examples"):
        check_count(CHAPTER, key, params[key], 1)
    if params["photo_source"] == "imagenet-val":
        absent = [k for k in ("imagenet_root", "imagenet_labels") if params.get(k) is None]
        if absent:
            raise ValueError(f"photo_source 'imagenet-val' needs {absent} (the validation folder and its "
                             "labels file)")
    if params["shap_images"] > params["n_images"]:
        raise ValueError("shap_images must not exceed n_images")
    for key in ("max_images", "max_grid_maps", "method_options"):
        if not isinstance(params[key], Mapping):
            raise TypeError(f"{key} must be a mapping keyed by method name, got {type(params[key]).__name__}")
    return dict(params)


def layer_of(model_name: str, kind: str) -> str:
    """The layer of ``model_name`` explained for a layer kind (``"last"`` or ``"nonlinear"``)."""
    if kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {sorted(LAYER_KINDS)}")
    return getattr(models.MODELS[model_name], LAYER_KINDS[kind])


def configurations(params: Mapping[str, object]) -> list[tuple[str, str]]:
    """(model, layer kind) pairs to run; a kind whose layer repeats an earlier kind's layer is skipped."""
    out = []
    for model_name in params["models"]:
        seen = set()
        for kind in params["layers"]:
            layer = layer_of(model_name, kind)
            if layer not in seen:
                seen.add(layer)
                out.append((model_name, kind))
    return out


# ------------------------------------------------------------------------------------------------ counting
@contextlib.contextmanager
def count_network_passes(net: nn.Module) -> Iterator[dict[str, int]]:
    """Counts the images that go through ``net`` as a whole (``counter["rows"]``) while the block runs: a
    method's full forward passes, not the evaluations of the tail alone (which call only the tail's
    modules)."""
    counter = {"rows": 0}

    def hook(_module: nn.Module, inputs: tuple) -> None:
        if inputs and isinstance(inputs[0], torch.Tensor):
            counter["rows"] += inputs[0].shape[0]

    handle = net.register_forward_pre_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


def flops(function, *args) -> int:
    """Floating-point operations (convolutions and matrix products, forward and backward) of
    ``function(*args)``."""
    with FlopCounterMode(display=False) as counter:
        function(*args)
    return int(counter.get_total_flops())


def forward_equivalents(method: Explainer, net: nn.Module, image: torch.Tensor,
                        target: torch.Tensor) -> float:
    """The FLOPs of explaining one image over the FLOPs of one forward pass of the network on it."""
    with torch.no_grad():
        unit = flops(net, image)
    return flops(method, image, target) / unit


# ------------------------------------------------------------------------------------------------ explaining
def _sync(device: torch.device) -> None:
    # Timing boundaries only: CUDA kernels run asynchronously, so a clock read needs the queue drained.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def explain_with_weights(method: Explainer, images: torch.Tensor, targets: torch.Tensor, *,
                         chunk: int) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """(maps [N, H, W], channel coefficients [N, K] or None, seconds per image) in chunks of ``chunk`` images.

    The maps are what ``method(images, targets)`` returns (upsampled, min-max normalised); the coefficients
    come from the same computation, so nothing is explained twice.
    """
    maps, weights = [], []
    _sync(images.device)
    start = time.perf_counter()
    for i in range(0, images.shape[0], chunk):
        explanation = method.explain(images[i:i + chunk], targets[i:i + chunk])
        saliency = upsample(explanation.saliency.detach().float(), tuple(images.shape[-2:]))
        maps.append(normalize_maps(saliency))
        if explanation.weights is not None:
            weights.append(explanation.weights.detach())
    _sync(images.device)
    seconds = (time.perf_counter() - start) / images.shape[0]
    return torch.cat(maps), (torch.cat(weights) if weights else None), seconds


def batch_one_seconds(functions: Mapping[str, object], images: torch.Tensor, targets: torch.Tensor, *,
                      repeats: int) -> dict[str, float]:
    """Median seconds per image of each ``functions[name](image, target)`` called on single images.

    The calls are interleaved — every function on every image, then the next round — so that a change of load
    on a shared machine affects all of them alike; the median over ``repeats`` rounds drops the outliers.
    """
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            _sync(images.device)
            start = time.perf_counter()
            for i in range(images.shape[0]):
                function(images[i:i + 1], targets[i:i + 1])
            _sync(images.device)
            times[name].append((time.perf_counter() - start) / images.shape[0])
    return {name: float(np.median(values)) for name, values in times.items()}


# --------------------------------------------------------------------------------------------- one config
def _images(params: Mapping[str, object]):
    source = params["photo_source"]
    if source == "imagenet-val":
        from camrepro.data.folders import imagenet_val

        dataset = imagenet_val(params["imagenet_root"], params["imagenet_labels"], size=params["image_size"])
        generator = torch.Generator().manual_seed(params["seed"])
        index = torch.randperm(len(dataset), generator=generator)[:params["n_images"]].sort().values.tolist()
        images = torch.stack([dataset[i][0] for i in index])
        return images, [f"imagenet-val/{i}" for i in index]
    photos = load_photos(source, n=params["n_images"], size=params["image_size"], seed=params["seed"])
    return photos.images, photos.names


class _Stopwatch:
    """Wall time of each stage of a configuration, for the chapter's account of where its time goes."""

    def __init__(self, base: Mapping[str, object]):
        self.base = dict(base)
        self.rows: list[dict[str, object]] = []
        self.start = time.perf_counter()

    def lap(self, stage: str, method: str = "") -> None:
        now = time.perf_counter()
        self.rows.append({**self.base, "stage": stage, "method": method, "seconds": now - self.start})
        self.start = now


def _one_config(model_name: str, kind: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    dev = torch.device(device)
    watch = _Stopwatch({"model": model_name, "layer_kind": kind})
    net, _ = models.load(model_name, device=dev)
    layer = layer_of(model_name, kind)
    images, names = _images(params)
    images = images.to(dev)
    targets, probs = explaining.predict(net, images)
    base = {"model": model_name, "layer_kind": kind, "layer": layer}
    categories = models.imagenet_categories()
    predictions = pd.DataFrame({**base, "image": names, "class": targets.tolist(),
                                "class_name": [categories[c] for c in targets.tolist()],
                                "probability": probs.tolist()})
    watch.lap("load model and photos, predict")

    # 1. ground-truth SHAP values and LIFT-CAM's completeness on the same images
    n_shap = params["shap_images"]
    lift = methods.get("lift-cam")(net, layer)
    contributions = lift.contributions(images[:n_shap], targets[:n_shap])
    start = time.perf_counter()
    shap = permutation_shap(lift.plan, contributions.activations, targets[:n_shap],
                            n_permutations=params["shap_permutations"], seed=params["seed"])
    shap_seconds = (time.perf_counter() - start) / n_shap
    lift_gap = (contributions.coefficients.sum(1) - (contributions.output - contributions.reference_output))
    shap_table = pd.DataFrame({
        **base, "image": names[:n_shap], "target": targets[:n_shap].tolist(),
        "output_difference": shap.total.numpy(), "shap_sum": shap.values.sum(1).numpy(),
        "relative_error_floor": shap.relative_error_floor().numpy(),
        "mean_stderr": shap.stderr.mean(1).numpy(), "max_abs_value": shap.values.abs().amax(1).numpy(),
        "lift_completeness_error": lift_gap.abs().cpu().double().numpy(),
        "n_permutations": shap.n_permutations, "n_samples": shap.n_samples, "seconds_per_image": shap_seconds,
        "channels": contributions.activations.shape[1], "tail_is_linear": lift.plan.is_linear(),
        # a CAM weights maps that are meant to be non-negative (after a ReLU); a signed layer changes what
        # ReLU(Σ_k φ_k A_k) shows, whatever the coefficients
        "negative_share": (contributions.activations < 0).double().mean((1, 2, 3)).cpu().numpy()})
    watch.lap("SHAP sampling", "lift-cam")

    # 2-3. every method: maps, coefficients, faithfulness, grid pointing, timing, cost
    grids = make_grids(images.cpu(), targets.cpu(), params["n_grids"], seed=params["seed"])
    grid_images = grids.images.to(dev).repeat_interleave(4, dim=0)          # each grid once per quadrant
    grid_targets = grids.classes.to(dev).reshape(-1)
    grid_quadrant = torch.arange(4).repeat(len(grids))
    forward_batched = explaining.forward_time_per_image(
        net, images, batch=min(params["chunk"], images.shape[0]), repeats=params["timing_repeats"])
    watch.lap("forward-pass timing")
    built: dict[str, Explainer] = {}
    agreement_rows, faith_rows, grid_rows, time_rows = [], [], [], []
    n_examples = min(params["n_examples"], images.shape[0])
    examples: dict[str, np.ndarray] = {"images": images[:n_examples].cpu().numpy().astype(np.float16)}
    coefficients: dict[str, np.ndarray] = {"shap": shap.values[0].numpy(),
                                           "shap_stderr": shap.stderr[0].numpy()}
    for name in params["methods"]:
        method = built[name] = explaining.build(name, net, layer, params["method_options"].get(name))
        n = min(int(params["max_images"].get(name, params["n_images"])), images.shape[0])
        x, t = images[:n], targets[:n]
        capped = name in params["max_images"]
        if not capped:  # a capped method costs seconds per image: first-call overheads do not matter
            method(x[:1], t[:1])
        watch.lap("warm-up", name)
        with count_network_passes(net) as counted:
            maps, weights, seconds = explain_with_weights(method, x, t, chunk=params["chunk"])
        passes = counted["rows"] / n
        watch.lap("maps (batched)", name)
        if capped:  # its batched run (one image per call when its cap is 1) is its batch-1 timing
            capped_batch_one = seconds if min(params["chunk"], n) == 1 else batch_one_seconds(
                {name: method}, x[:1], t[:1], repeats=1)[name]
        equivalents = math.nan if capped else forward_equivalents(method, net, x[:1], t[:1])
        watch.lap("FLOP count", name)
        time_rows.append({**base, "method": name, "images": n, "batch": min(params["chunk"], n),
                          "s_per_image_batch1": capped_batch_one if capped else math.nan,
                          "s_per_image_batched": seconds,
                          "forward_s_batched": forward_batched, "network_passes_per_image": passes,
                          "flops_in_forwards": equivalents, "cost_formula": type(method).forward_passes})
        if weights is not None:
            k = min(n, n_shap)
            agree = metrics.coefficient_agreement(weights[:k].cpu(), shap.values[:k])
            agreement_rows.append(pd.DataFrame({**base, "method": name, "image": names[:k],
                                                **{key: value.numpy() for key, value in agree.items()}}))
            coefficients[name] = weights[0].cpu().double().numpy()
        p, o = metrics.masked_probabilities(net, x, maps, t, space="pixel")
        auc = {mode: metrics.insertion_deletion(net, x, maps, t, mode=mode, steps=params["insertion_steps"])
               ["auc_per_image"] for mode in ("deletion", "insertion")}
        faith_rows.append(pd.DataFrame({**base, "method": name, "image": names[:n], "p": p.numpy(),
                                        "o": o.numpy(), "deletion_auc": auc["deletion"],
                                        "insertion_auc": auc["insertion"]}))
        watch.lap("AD/AI/AG and insertion/deletion", name)
        n_grid = min(int(params["max_grid_maps"].get(name, grid_images.shape[0])), grid_images.shape[0])
        if n_grid:
            grid_maps, _, _ = explain_with_weights(method, grid_images[:n_grid], grid_targets[:n_grid],
                                                   chunk=params["chunk"])
            pointing = metrics.grid_pointing_game(grid_maps, grid_quadrant[:n_grid].to(dev))
            grid_rows.append(pd.DataFrame({**base, "method": name, "grid": np.arange(n_grid) // 4,
                                           "quadrant": grid_quadrant[:n_grid].numpy(),
                                           "hit": pointing.hit.cpu().numpy(),
                                           "energy": pointing.energy.cpu().double().numpy()}))
        watch.lap("grid pointing game", name)
        examples[name] = maps[:n_examples].cpu().numpy().astype(np.float16)

    # batch-1 timing of the uncapped methods and of a forward pass, interleaved
    k = min(params["timing_images"], images.shape[0])

    def forward_pass(image: torch.Tensor, _target: torch.Tensor) -> None:
        with torch.no_grad():
            net(image)

    timed = {"forward": forward_pass} | {n: m for n, m in built.items() if n not in params["max_images"]}
    batch_one = batch_one_seconds(timed, images[:k], targets[:k], repeats=params["timing_repeats"])
    timing = pd.DataFrame(time_rows)
    timing["s_per_image_batch1"] = [batch_one.get(name, s) for name, s in
                                    zip(timing.method, timing.s_per_image_batch1, strict=True)]
    timing["forward_s_batch1"] = batch_one["forward"]
    watch.lap("batch-1 timing")
    rules = {"linear": "gradient (linear)", "elementwise": "Rescale", "max_pool": "max-pooling rule",
             "product": "product rule"}
    tail = pd.DataFrame([{**base, "step": i, "operation": operation, "rule": rules[kind]}
                         for i, (operation, kind) in enumerate(lift.plan.describe())])
    return {
        "predictions": predictions,
        "tail": tail,
        "shap": shap_table,
        "agreement": pd.concat(agreement_rows, ignore_index=True),
        "faithfulness": pd.concat(faith_rows, ignore_index=True),
        "grid": pd.concat(grid_rows, ignore_index=True) if grid_rows else pd.DataFrame(
            columns=["model", "layer_kind", "layer", "method", "grid", "quadrant", "hit", "energy"]),
        "timing": timing,
        "stages": pd.DataFrame(watch.rows),
        "examples": examples,
        "coefficients": coefficients,
    }


def run(params: Mapping[str, object], device: str = "cpu") -> dict[str, cache.Result]:
    """One cached result per (model, layer kind), keyed ``"<model>/<kind>"``; a rerun with the same parameters
    and code reads them from disk."""
    params = check_params(params)
    out = {}
    for model_name, kind in configurations(params):
        config = {k: v for k, v in params.items() if k not in ("models", "layers")} | {"model": model_name,
                                                                                       "layer_kind": kind}
        out[f"{model_name}/{kind}"] = cache.cached(
            CHAPTER, f"{model_name}-{kind}", config,
            lambda m=model_name, k=kind: _one_config(m, k, params, device), device=device)
    return out


def table(results: Mapping[str, cache.Result], name: str) -> pd.DataFrame:
    """One table (``"tail"``, ``"shap"``, ``"agreement"``, ``"faithfulness"``, ``"grid"``, ``"timing"``,
    ``"stages"``, ``"predictions"``) of every configuration, concatenated."""
    return pd.concat([r[name] for r in results.values()], ignore_index=True)


# ------------------------------------------------------------------------------------------------ summaries
def _mean_and_stderr(values: pd.Series) -> tuple[float, float]:
    values = values.dropna()
    if len(values) < 2:
        return (float(values.mean()) if len(values) else math.nan), math.nan
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def agreement_summary(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """Per (model, layer kind, method): mean ± standard error over images of the Spearman correlation, the
    normalised error and the cosine of the coefficients with the sampled SHAP values, and the SHAP sampling's
    own resolution (mean relative error floor)."""
    agreement = table(results, "agreement")
    floors = table(results, "shap").groupby(["model", "layer_kind"]).relative_error_floor.mean()
    rows = []
    for (model_name, kind, name), group in agreement.groupby(["model", "layer_kind", "method"], sort=False):
        row = {"model": model_name, "layer_kind": kind, "method": name, "images": len(group)}
        for key in ("spearman", "normalised_error", "cosine"):
            row[key], row[f"{key}_se"] = _mean_and_stderr(group[key])
        row["shap_error_floor"] = float(floors[(model_name, kind)])
        rows.append(row)
    return pd.DataFrame(rows)


def _per_image_metrics(faith: pd.DataFrame, grid: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, bool]]:
    """metric → (table with columns method, image, value; higher is better)."""
    p, o = faith.p.to_numpy(), faith.o.to_numpy()
    terms = faith[["method", "image"]].copy()
    eps = metrics.PROBABILITY_EPS
    out = {
        "AD": (terms.assign(value=np.maximum(p - o, 0) / np.maximum(p, eps) * 100), False),
        "AI": (terms.assign(value=(p < o) * 100.0), True),
        "AG": (terms.assign(value=np.maximum(o - p, 0) / np.maximum(1 - p, eps) * 100), True),
        "insertion": (terms.assign(value=faith.insertion_auc.to_numpy() * 100), True),
        "deletion": (terms.assign(value=faith.deletion_auc.to_numpy() * 100), False),
    }
    grid_terms = grid.assign(image=grid.grid.astype(str) + "/" + grid.quadrant.astype(str))
    keys = grid_terms[["method", "image"]]
    out["grid_hit"] = (keys.assign(value=grid.hit.astype(float).to_numpy() * 100), True)
    out["grid_energy"] = (keys.assign(value=grid.energy.astype(float).to_numpy() * 100), True)
    return out


METRIC_COLUMNS = ("AD", "AI", "AG", "insertion", "deletion", "grid_hit", "grid_energy")
HIGHER_IS_BETTER = {"AD": False, "AI": True, "AG": True, "insertion": True, "deletion": False,
                    "grid_hit": True, "grid_energy": True}


def faithfulness_summary(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """Per (model, layer kind, method): AD, AI, AG (%), insertion and deletion AUC (%), grid pointing hit rate
    and energy (%), each the mean over images, with the number of images and grid maps."""
    rows = []
    for result in results.values():
        faith, grid = result["faithfulness"], result["grid"]
        per_metric = _per_image_metrics(faith, grid)
        model_name, kind = faith.model.iloc[0], faith.layer_kind.iloc[0]
        for name in faith.method.unique():
            row = {"model": model_name, "layer_kind": kind, "method": name,
                   "images": int((faith.method == name).sum()), "grid_maps": int((grid.method == name).sum())}
            for key, (values, _) in per_metric.items():
                row[key] = float(values[values.method == name].value.mean())
            rows.append(row)
    return pd.DataFrame(rows)


def timing_summary(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """The timing table with ratios: each method against a forward pass, against Grad-CAM and Score-CAM."""
    timing = table(results, "timing").copy()
    timing["batch1_in_forwards"] = timing.s_per_image_batch1 / timing.forward_s_batch1
    timing["batched_in_forwards"] = timing.s_per_image_batched / timing.forward_s_batched
    for reference in ("grad-cam", "score-cam"):
        ref = timing[timing.method == reference].set_index(["model", "layer_kind"]).s_per_image_batch1
        key = list(zip(timing.model, timing.layer_kind, strict=True))
        timing[f"batch1_vs_{reference.replace('-', '_')}"] = [
            s / ref.get(k, math.nan) for s, k in zip(timing.s_per_image_batch1, key, strict=True)]
    return timing


# ---------------------------------------------------------------------------------------------------- claims
def compare_paired(values: pd.DataFrame, reference: str, other: str,
                   higher_is_better: bool) -> dict[str, float]:
    """LIFT-CAM (``reference``) against ``other`` on the images both have: the mean of the per-image
    differences oriented so that positive means ``reference`` is better, its standard error, and the number of
    images."""
    a = values[values.method == reference].set_index("image").value
    b = values[values.method == other].set_index("image").value
    common = a.index.intersection(b.index)
    diff = (a[common] - b[common]) * (1 if higher_is_better else -1)
    mean, se = _mean_and_stderr(diff)
    return {"difference": mean, "stderr": se, "images": len(common)}


# Differences below this are float rounding, not results (LIFT-CAM and LRP-CAM coincide on a linear tail).
NUMERICAL_TOLERANCE = 1e-6


def outcome(difference: float, stderr: float, resolution: float = 0.0) -> str:
    """``"better"`` / ``"worse"`` when the oriented difference exceeds 2 standard errors plus ``resolution``
    (the ground truth's own noise, for SHAP agreement) plus :data:`NUMERICAL_TOLERANCE`, ``"tie"`` otherwise,
    ``"untested"`` without a standard error."""
    if not math.isfinite(stderr):
        return "untested"
    margin = 2 * stderr + resolution + NUMERICAL_TOLERANCE
    if difference > margin:
        return "better"
    if difference < -margin:
        return "worse"
    return "tie"


def shap_comparisons(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """LIFT-CAM against every other method present, per (model, layer kind), on the Spearman correlation and
    the normalised error with the sampled SHAP values; the normalised error's resolution is the mean SHAP
    error floor."""
    agreement = table(results, "agreement")
    floors = table(results, "shap").groupby(["model", "layer_kind"]).relative_error_floor.mean()
    rows = []
    for (model_name, kind), group in agreement.groupby(["model", "layer_kind"], sort=False):
        for other in [m for m in OTHER_CAMS if m in set(group.method)]:
            for key, higher in (("spearman", True), ("normalised_error", False)):
                values = group[["method", "image"]].assign(value=group[key])
                cmp = compare_paired(values, "lift-cam", other, higher)
                resolution = float(floors[(model_name, kind)]) if key == "normalised_error" else 0.0
                rows.append({"model": model_name, "layer_kind": kind, "other": other, "measure": key, **cmp,
                             "outcome": outcome(cmp["difference"], cmp["stderr"], resolution)})
    return pd.DataFrame(rows)


def faithfulness_comparisons(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """LIFT-CAM against every other CAM present, per (model, layer kind) and metric, on paired images."""
    rows = []
    for result in results.values():
        faith, grid = result["faithfulness"], result["grid"]
        model_name, kind = faith.model.iloc[0], faith.layer_kind.iloc[0]
        for key, (values, higher) in _per_image_metrics(faith, grid).items():
            for other in [m for m in OTHER_CAMS if m in set(values.method)]:
                cmp = compare_paired(values, "lift-cam", other, higher)
                rows.append({"model": model_name, "layer_kind": kind, "other": other, "metric": key, **cmp,
                             "outcome": outcome(cmp["difference"], cmp["stderr"])})
    return pd.DataFrame(rows)


def verdict(outcomes: pd.Series) -> str:
    """The rule for the accuracy and faithfulness claims, over the tested comparisons of LIFT-CAM with the
    other CAMs: *reproduced* when none is significantly worse and at least one is significantly better;
    *partly reproduced* when at most a quarter are significantly worse; *not reproduced* otherwise; *not
    testable here* when no comparison has two paired images."""
    tested = outcomes[outcomes != "untested"]
    if tested.empty:
        return "not testable here"
    worse = int((tested == "worse").sum())
    if worse == 0 and (tested == "better").any():
        return "reproduced"
    if worse <= len(tested) / 4:
        return "partly reproduced"
    return "not reproduced"


# The speed claim: "near Grad-CAM" = at most this many times Grad-CAM's time, "far faster than Score-CAM" = at
# least this many times faster, both at batch 1 in every configuration.
NEAR_GRAD_CAM = 2.0
FAR_FASTER_THAN_SCORE_CAM = 10.0


def _outcome_counts(outcomes: pd.Series) -> str:
    counts = outcomes.value_counts()
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in ("better", "tie", "worse", "untested"))


def _speed_verdict(near: pd.Series, faster: pd.Series) -> str:
    if near.isna().all() or faster.isna().all():
        return "not testable here"
    ok_near = bool((near <= NEAR_GRAD_CAM).all())
    ok_far = bool((faster >= FAR_FASTER_THAN_SCORE_CAM).all())
    if ok_near and ok_far:
        return "reproduced"
    return "partly reproduced" if ok_near or ok_far else "not reproduced"


SOURCE = ("Jung & Oh, ICCV 2021, abstract (quoted); the paper's tables are not transcribed in "
          "data/reference, so no published number is quoted")
ABSTRACT_ACCURACY = ("“LIFT-CAM can estimate the SHAP values of the activation maps with high speed and "
                     "accuracy”")
ABSTRACT_FAITHFULNESS = ("“it greatly outperforms other previous CAM-based methods in both qualitative and "
                         "quantitative aspects”")


def claims(params: Mapping[str, object], device: str = "cpu",
           results: Mapping[str, cache.Result] | None = None) -> pd.DataFrame:
    """The paper's three claims with our figures and a verdict decided by :func:`verdict` and the speed rule.

    ``results``: the output of :func:`run` for these parameters when the caller has it (else it is read from
    the cache, or computed)."""
    results = run(params, device) if results is None else results
    rows = []

    shap_cmp = shap_comparisons(results)
    lift = agreement_summary(results).query("method == 'lift-cam'")
    ours = "; ".join(f"{r.model}/{r.layer_kind}: Spearman {r.spearman:.3f}, normalised error "
                     f"{r.normalised_error:.3f}" for r in lift.itertuples())
    rows.append({"paper": PAPER,
                 "claim": "LIFT-CAM's coefficients approximate the SHAP values of the activation maps better "
                          "than the other CAMs' (LRP-CAM, LIME-CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, "
                          "Score-CAM)",
                 "published": ABSTRACT_ACCURACY,
                 "ours": f"LIFT-CAM {ours}. Against the others: {_outcome_counts(shap_cmp.outcome)}",
                 "verdict": verdict(shap_cmp.outcome), "source": SOURCE})

    faith_cmp = faithfulness_comparisons(results)
    lift = faithfulness_summary(results).query("method == 'lift-cam'")
    ours = "; ".join(f"{r.model}/{r.layer_kind}: AD {r.AD:.1f}, AI {r.AI:.1f}, AG {r.AG:.1f}, insertion "
                     f"{r.insertion:.1f}, deletion {r.deletion:.1f}" for r in lift.itertuples())
    rows.append({"paper": PAPER,
                 "claim": "LIFT-CAM's maps are more faithful than the other CAMs' (Average Drop / Increase / "
                          "Gain, insertion / deletion, grid pointing game)",
                 "published": ABSTRACT_FAITHFULNESS,
                 "ours": f"LIFT-CAM {ours}. Per image and metric against the others: "
                         f"{_outcome_counts(faith_cmp.outcome)}",
                 "verdict": verdict(faith_cmp.outcome), "source": SOURCE})

    lift = timing_summary(results).query("method == 'lift-cam'")
    ours = "; ".join(f"{r.model}/{r.layer_kind}: {r.batch1_vs_grad_cam:.2f}× Grad-CAM's time, "
                     f"{1 / r.batch1_vs_score_cam:.0f}× faster than Score-CAM, "
                     f"{r.network_passes_per_image:.0f} network pass per image" for r in lift.itertuples())
    rows.append({"paper": PAPER,
                 "claim": f"LIFT-CAM runs near Grad-CAM's speed (≤ {NEAR_GRAD_CAM:g}× its time) and far "
                          f"faster than Score-CAM (≥ {FAR_FASTER_THAN_SCORE_CAM:g}×), at batch 1",
                 "published": ABSTRACT_ACCURACY, "ours": ours,
                 "verdict": _speed_verdict(lift.batch1_vs_grad_cam, 1 / lift.batch1_vs_score_cam),
                 "source": SOURCE})
    return pd.DataFrame(rows)
