"""The ``afmi`` chapter: A-FMI (Zhang et al., arXiv:2104.05527, reconstructed from its abstract) against
reference-based pixel attributions and CAMs.

Three experiments, each cached per model (:func:`run`):

1. **Reference insensitivity** (``insensitivity-<model>``): the maps of A-FMI, integrated gradients, DeepLIFT
   and LIFT-CAM under every reference of ``references`` (black, mean colour, blur, uniform noise, another
   photo), for the predicted class of each photo; for every method, the rank correlation and the top-k IoU
   between the maps of the same image under each pair of references (:func:`cross_reference_agreement`).
2. **Gradient saturation** (``saturation-<model>``): the most confident photos of a pool, explained through
   the class *probability* softmax(T · logits) at temperatures T (the higher T, the closer p is to 1 and the
   smaller the local gradient), by Grad-CAM (the local gradient at x) and by A-FMI (the gradient averaged
   along the path from the reference). Each map is compared with the same method's map of the (unsaturated)
   logit, and scored by deletion AUC on the network.
3. **Faithfulness and class discrimination** (``faithfulness-<model>``): AD/AI/AG, insertion/deletion AUC, and
   the grid pointing game on 2×2 grids of photos of four different predicted classes.

:func:`claims` turns them into the rows of the reproducibility report, each verdict decided by a rule written
below (``*_verdict`` functions); the abstract gives no number, so the ``published`` column quotes its words.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from camrepro import cache, methods, metrics, models
from camrepro.data.grid import make_grids
from camrepro.data.photos import load_photos
from camrepro.experiments.parameters import check_count, check_models, check_required
from camrepro.experiments import explaining
from camrepro.methods.a_fmi import AFMI
from camrepro.methods.base import normalize_maps, upsample
from camrepro.methods.references import REFERENCE_NAMES, make_reference

CHAPTER = "afmi"
PAPER = "A-FMI"
SOURCE = "arXiv:2104.05527, abstract"
OTHER_PHOTO = "photo"
"""The reference name that stands for another photo (``other_photo``), as one image shared by the batch."""
REFERENCE_METHODS = ("a-fmi", "integrated-gradients", "deeplift", "lift-cam")
"""Methods that take a ``reference`` (and ``blur_sigma``, ``noise_seed``) option."""
PIXEL_METHODS = ("integrated-gradients", "deeplift")
"""The reference-based attributions the insensitivity claim is judged against."""
LAYER_CHOICES = ("last", "nonlinear")
INPUT = "input"
"""The ``layer`` label of the pixel attributions, which explain the input rather than a layer."""

REQUIRED = (
    "models", "layers", "photo_source", "seed", "chunk",
    # 1. reference insensitivity
    "n_images", "references", "other_photo", "blur_sigma", "noise_seed", "methods", "afmi_steps", "ig_steps",
    "topk_fraction", "pooled_size",
    # 2. saturation
    "saturation_models", "saturation_pool", "saturation_images", "temperatures", "saturation_reference",
    "saturation_steps",
    # 3. faithfulness and grids
    "faithfulness_models", "faithfulness_images", "faithfulness_methods", "faithfulness_reference",
    "insertion_steps", "grid_photos", "n_grids",
)


# ----------------------------------------------------------------------------------------------- parameters

def check_params(params: Mapping[str, object]) -> dict[str, object]:
    """The chapter's parameters, checked; ValueError naming what is missing or wrong."""
    check_required(CHAPTER, params, REQUIRED)
    for key in ("models", "saturation_models", "faithfulness_models"):
        check_models(CHAPTER, key, params[key])
    layers = list(params["layers"])
    if not layers or len(set(layers)) != len(layers) or not set(layers) <= set(LAYER_CHOICES):
        raise ValueError(f"afmi parameter 'layers' must list distinct choices among {LAYER_CHOICES} (the "
                         f"first is the one the verdicts use), got {params['layers']!r}")
    known = (*REFERENCE_NAMES, OTHER_PHOTO)
    references = list(params["references"])
    if len(references) < 2 or len(set(references)) != len(references) or not set(references) <= set(known):
        raise ValueError(f"afmi parameter 'references' must list at least two distinct references among "
                         f"{known}, got {references!r}")
    for key in ("saturation_reference", "faithfulness_reference"):
        if params[key] not in known:
            raise ValueError(f"afmi parameter {key!r} must be one of {known}, got {params[key]!r}")
    for key in ("methods", "faithfulness_methods"):
        if "a-fmi" not in params[key]:
            raise ValueError(f"afmi parameter {key!r} must include 'a-fmi' (the method of this chapter)")
    unsupported = [m for m in params["methods"] if m not in REFERENCE_METHODS]
    if unsupported:
        raise ValueError(f"afmi parameter 'methods' lists {unsupported}, which take no reference; "
                         f"choose among {REFERENCE_METHODS}")
    for key in ("chunk", "n_images", "pooled_size", "afmi_steps", "ig_steps", "saturation_pool",
                "saturation_images", "saturation_steps", "faithfulness_images", "insertion_steps",
                "grid_photos", "n_grids"):
        check_count(CHAPTER, key, params[key], 1)
    if params["saturation_images"] > params["saturation_pool"]:
        raise ValueError("afmi parameter 'saturation_images' cannot exceed 'saturation_pool'")
    temperatures = list(params["temperatures"])
    if not temperatures or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0
                                   for t in temperatures):
        raise ValueError(f"afmi parameter 'temperatures' must be positive numbers, got {temperatures!r}")
    fraction = params["topk_fraction"]
    if not isinstance(fraction, float) or not 0 < fraction <= 1:
        raise ValueError(f"afmi parameter 'topk_fraction' must be a float in (0, 1], got {fraction!r}")
    return dict(params)


def layer_for(model_name: str, choice: str) -> str:
    """The explained layer: ``"last"`` = the last convolution (a linear tail: pool + fc), ``"nonlinear"`` =
    the block before it (its tail holds a 1×1 convolution, batch-norm and ReLU6 before the pool)."""
    spec = models.MODELS[model_name]
    return spec.default_layer if choice == "last" else spec.nonlinear_tail_layer


def method_layers(name: str, choices: list[str]) -> list[str]:
    """The layer choices method ``name`` runs at: every one of ``choices`` for a method that explains a layer,
    ``[INPUT]`` for a pixel attribution."""
    return list(choices) if methods.get(name).needs_layer else [INPUT]


def load_images(params: Mapping[str, object], n: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` images [n, 3, 224, 224] in [0, 1] and their names: packaged photos (``photo_source`` =
    ``ai-benchmark``, ``skimage`` or ``all``; drawn with ``seed``, kept in file order), or ``imagenet-val``:
    ``n`` images drawn with ``seed`` from the folder ``imagenet_root`` with its labels file
    ``imagenet_labels`` (paths relative to the repository root; the reader provides them)."""
    source = params["photo_source"]
    if source == "imagenet-val":
        from camrepro.data.folders import imagenet_val
        from camrepro.provenance import repository_root

        paths = []
        for key in ("imagenet_root", "imagenet_labels"):
            if not params.get(key):
                raise ValueError(f"photo_source 'imagenet-val' needs the afmi parameter {key!r}")
            path = Path(str(params[key]))
            paths.append(path if path.is_absolute() else repository_root() / path)
        dataset = imagenet_val(paths[0], paths[1])
        if n > len(dataset):
            raise ValueError(f"asked for {n} images but {paths[0]} holds {len(dataset)}")
        generator = torch.Generator().manual_seed(int(params["seed"]))
        index = torch.randperm(len(dataset), generator=generator)[:n].sort().values.tolist()
        return torch.stack([dataset[i][0] for i in index]), [f"imagenet-val/{dataset.samples[i][0].name}"
                                                            for i in index]
    photos = load_photos(source, n=n, seed=int(params["seed"]))
    return photos.images, list(photos.names)


def other_photo(name: str, size: int) -> torch.Tensor:
    """The photo ``<source>/<stem>`` (e.g. ``skimage/coffee``) as a [1, 3, size, size] reference image."""
    source = name.split("/", 1)[0]
    photos = load_photos(source, size=size)
    if name not in photos.names:
        raise ValueError(f"other_photo {name!r} is not one of the {source!r} photos: {photos.names[:10]}…")
    return photos.images[photos.names.index(name)].unsqueeze(0)


def method_options(name: str, reference: str | None, params: Mapping[str, object],
                   other: torch.Tensor | None) -> dict[str, object]:
    """Constructor options of method ``name`` under the reference called ``reference`` (None: the method's own
    default, e.g. LIFT-CAM's all-zero activations)."""
    options: dict[str, object] = {}
    if name in REFERENCE_METHODS and reference is not None:
        options = {"reference": other if reference == OTHER_PHOTO else reference,
                   "blur_sigma": float(params["blur_sigma"]), "noise_seed": int(params["noise_seed"])}
    if name == "a-fmi":
        options["steps"] = params["afmi_steps"]
    elif name == "integrated-gradients":
        options["steps"] = params["ig_steps"]
    return options


# ------------------------------------------------------------------------------------------------ helpers

def afmi_maps(afmi: AFMI, images: torch.Tensor, targets: torch.Tensor, chunk: int
              ) -> tuple[torch.Tensor, pd.DataFrame]:
    """A-FMI maps [N, H, W] (as ``afmi(images, targets)`` gives them) and, per image, the completeness check:
    ``score`` F_c(x), ``reference_score`` F_c(x′), ``sum_phi`` Σ_k φ_k, ``relative_gap``
    |Σφ − (F_c(x) − F_c(x′))| / |F_c(x) − F_c(x′)|, ``path_gradient``, the mean over channels of
    |Σ_ij ḡ_kij| / (h·w) (the size of the path-averaged gradient), and ``reference_ratio`` ‖A(x′)‖ / ‖A(x)‖
    (how large the reference's activations are next to the image's: near 0, ΔA ≈ A(x))."""
    maps, rows = [], []
    for first in range(0, images.shape[0], chunk):
        result = afmi.attribute(images[first:first + chunk], targets[first:first + chunk])
        maps.append(normalize_maps(upsample(result.saliency.float(), tuple(images.shape[-2:]))))
        difference = (result.score - result.reference_score).double()
        norms = result.activations.flatten(1).norm(dim=1)
        reference_norms = (result.activations - result.delta).flatten(1).norm(dim=1)
        gap = result.completeness_gap.double().abs() / difference.abs().clamp_min(1e-12)
        rows.append(pd.DataFrame({"score": result.score.double().cpu().numpy(),
                                  "reference_score": result.reference_score.double().cpu().numpy(),
                                  "sum_phi": result.importance.sum(dim=1).double().cpu().numpy(),
                                  "relative_gap": gap.cpu().numpy(),
                                  "path_gradient": result.path_gradients.mean(dim=(2, 3)).abs().mean(dim=1)
                                  .double().cpu().numpy(),
                                  "reference_ratio": (reference_norms / norms.clamp_min(1e-12)).double().cpu()
                                  .numpy()}))
    return torch.cat(maps), pd.concat(rows, ignore_index=True)


def pooled(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Maps [N, H, W] averaged over a size × size grid of cells (adaptive average pooling):
    [N, size, size]."""
    return torch.nn.functional.adaptive_avg_pool2d(maps.unsqueeze(1), size).squeeze(1)


def cross_reference_agreement(maps: Mapping[str, torch.Tensor], topk_fraction: float,
                              pooled_size: int | None = None) -> pd.DataFrame:
    """Agreement of one method's maps of the same images under different references.

    ``maps``: reference name → maps [N, H, W] of the same N images. One row per image and unordered pair of
    references (in the order given): ``spearman`` (rank correlation of the pixels; NaN when either map is
    constant, which carries no ranking), ``topk_iou`` (IoU of the ``topk_fraction`` most salient pixels) and
    ``constant`` (either map is constant). With ``pooled_size``, the same two measures on the maps averaged
    over a ``pooled_size`` × ``pooled_size`` grid (``spearman_pooled``, ``topk_iou_pooled``): a comparison at
    one common resolution, since a map upsampled from a 7 × 7 layer is smooth by construction while a pixel
    attribution is not.
    """
    names = list(maps)
    if len(names) < 2:
        raise ValueError(f"cross-reference agreement needs maps under at least two references, got {names}")
    rows = []
    for a, b in itertools.combinations(names, 2):
        rho = metrics.map_rank_correlation(maps[a], maps[b]).numpy()
        iou = metrics.topk_iou(maps[a], maps[b], topk_fraction).numpy()
        flat_a = maps[a].flatten(1)
        flat_b = maps[b].flatten(1)
        constant = ((flat_a.max(1).values == flat_a.min(1).values)
                    | (flat_b.max(1).values == flat_b.min(1).values)).cpu().numpy()
        extra: dict[str, np.ndarray] = {}
        if pooled_size is not None:
            small_a, small_b = pooled(maps[a], pooled_size), pooled(maps[b], pooled_size)
            extra = {"spearman_pooled": metrics.map_rank_correlation(small_a, small_b).numpy(),
                     "topk_iou_pooled": metrics.topk_iou(small_a, small_b, topk_fraction).numpy()}
        for i in range(len(rho)):
            rows.append({"image": i, "reference_a": a, "reference_b": b, "spearman": float(rho[i]),
                         "topk_iou": float(iou[i]), "constant": bool(constant[i]),
                         **{key: float(value[i]) for key, value in extra.items()}})
    return pd.DataFrame(rows)


class SoftmaxOutput(nn.Module):
    """A classifier whose outputs are its class probabilities at temperature T: softmax(T · logits).

    Explaining its "logit" c explains the probability p_c; the larger T, the closer the top probability is to
    1 and the smaller its gradient (saturation). The classifier is the submodule ``net``, so its layers are
    ``net.<name>``.
    """

    def __init__(self, net: nn.Module, temperature: float):
        super().__init__()
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        self.net = net
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x) * self.temperature, dim=1)


def _float16(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float16)


# ------------------------------------------------------------------------------------ 1. insensitivity

def _insensitivity(model_name: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    dev = torch.device(device)
    net, _ = models.load(model_name, device=dev)
    cpu_images, names = load_images(params, params["n_images"])
    images = cpu_images.to(dev)
    targets, probs = explaining.predict(net, images)
    other = other_photo(params["other_photo"], images.shape[-1]).to(dev)
    categories = models.imagenet_categories()
    predictions = pd.DataFrame({"model": model_name, "image": names, "class": targets.tolist(),
                                "class_name": [categories[c] for c in targets.tolist()],
                                "probability": probs.tolist()})
    pair_frames, completeness, timing = [], [], []
    example: dict[str, np.ndarray] = {"image": _float16(cpu_images[:1])}
    for reference in params["references"]:
        spec = other if reference == OTHER_PHOTO else reference
        example[f"reference|{reference}"] = _float16(make_reference(
            images[:1], spec, blur_sigma=float(params["blur_sigma"]), noise_seed=int(params["noise_seed"])))
    for name in params["methods"]:
        for choice in method_layers(name, params["layers"]):
            layer = None if choice == INPUT else layer_for(model_name, choice)
            maps: dict[str, torch.Tensor] = {}
            for reference in params["references"]:
                method = explaining.build(name, net, layer, method_options(name, reference, params, other))
                start = time.perf_counter()
                if isinstance(method, AFMI):
                    maps[reference], check = afmi_maps(method, images, targets, params["chunk"])
                    completeness.append(check.assign(model=model_name, layer=choice, reference=reference,
                                                     image=names))
                else:
                    maps[reference], _ = explaining.explain(method, images, targets, chunk=params["chunk"])
                timing.append({"model": model_name, "method": name, "layer": choice, "reference": reference,
                               "s_per_image": (time.perf_counter() - start) / images.shape[0]})
                maps[reference] = maps[reference].cpu()
                example[f"map|{name}|{choice}|{reference}"] = _float16(maps[reference][:1])
            pairs = cross_reference_agreement(maps, float(params["topk_fraction"]),
                                              int(params["pooled_size"]))
            pairs["image"] = [names[i] for i in pairs["image"]]
            pair_frames.append(pairs.assign(model=model_name, method=name, layer=choice))
    return {"predictions": predictions, "pairs": pd.concat(pair_frames, ignore_index=True),
            "completeness": pd.concat(completeness, ignore_index=True), "timing": pd.DataFrame(timing),
            "example": example}


# ---------------------------------------------------------------------------------------- 2. saturation

def _saturation(model_name: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    dev = torch.device(device)
    net, _ = models.load(model_name, device=dev)
    # The last convolution: its tail is pool + fc, so the softmax is the only non-linearity after the layer
    # and any saturation seen here is the saturation of the probability.
    layer = models.MODELS[model_name].default_layer
    pool, pool_names = load_images(params, params["saturation_pool"])
    pool_targets, pool_probs = explaining.predict(net, pool.to(dev))
    chosen = torch.argsort(pool_probs.cpu(), descending=True)[:params["saturation_images"]].sort().values
    images = pool[chosen].to(dev)
    targets = pool_targets[chosen.to(pool_targets.device)]
    names = [pool_names[i] for i in chosen.tolist()]
    afmi_options = {"reference": params["saturation_reference"], "steps": params["saturation_steps"],
                    "blur_sigma": float(params["blur_sigma"]), "noise_seed": int(params["noise_seed"])}
    if params["saturation_reference"] == OTHER_PHOTO:
        afmi_options["reference"] = other_photo(params["other_photo"], images.shape[-1]).to(dev)
    chunk = params["chunk"]
    grad_cam_logit = explaining.build("grad-cam", net, layer)
    logit_maps = {
        "grad-cam": explaining.explain(grad_cam_logit, images, targets, chunk=chunk)[0],
        "a-fmi": afmi_maps(AFMI(net, layer, **afmi_options), images, targets, chunk)[0],
    }
    example: dict[str, np.ndarray] = {"image": _float16(images[:1])}
    for name, maps in logit_maps.items():
        example[f"map|{name}|logit"] = _float16(maps[:1])
    rows = []
    for temperature in params["temperatures"]:
        wrapped = SoftmaxOutput(net, float(temperature))
        wrapped_layer = f"net.{layer}"
        grad_cam = explaining.build("grad-cam", wrapped, wrapped_layer)
        explanation = grad_cam.explain(images, targets)
        gradient = explanation.weights.abs().mean(dim=1)                 # mean |spatially averaged ∂p/∂A|
        with torch.no_grad():
            probability = wrapped(images).gather(1, targets.view(-1, 1)).squeeze(1)
        grad_cam_maps = normalize_maps(upsample(explanation.saliency.float(), tuple(images.shape[-2:])))
        per_method = {"grad-cam": (grad_cam_maps, gradient, torch.full_like(gradient, float("nan")))}
        afmi = AFMI(wrapped, wrapped_layer, **afmi_options)
        maps, check = afmi_maps(afmi, images, targets, chunk)
        per_method["a-fmi"] = (maps, torch.tensor(check["path_gradient"].to_list()),
                               torch.tensor(check["relative_gap"].to_list()))
        for name, (maps, grad, gap) in per_method.items():
            rho = metrics.map_rank_correlation(maps, logit_maps[name]).numpy()
            deletion = metrics.insertion_deletion(net, images, maps, targets, mode="deletion",
                                                  steps=params["insertion_steps"])["auc_per_image"]
            for i in range(images.shape[0]):
                rows.append({"model": model_name, "temperature": float(temperature), "method": name,
                             "image": names[i], "probability": float(probability[i]),
                             "probability_is_one": bool(float(probability[i]) == 1.0),
                             "gradient": float(grad[i]), "relative_gap": float(gap[i]),
                             "rank_correlation_with_logit_map": float(rho[i]),
                             "deletion_auc": float(deletion[i])})
            example[f"map|{name}|T={temperature:g}"] = _float16(maps[:1])
    return {"saturation": pd.DataFrame(rows), "example": example}


# ----------------------------------------------------------------------------- 3. faithfulness and grids

def _faithfulness(model_name: str, params: Mapping[str, object], device: str) -> dict[str, object]:
    dev = torch.device(device)
    net, _ = models.load(model_name, device=dev)
    n_photos = max(params["faithfulness_images"], params["grid_photos"])
    cpu_images, names = load_images(params, n_photos)
    all_images = cpu_images.to(dev)
    all_targets, _ = explaining.predict(net, all_images)
    n = params["faithfulness_images"]
    images, targets = all_images[:n], all_targets[:n]
    grids = make_grids(cpu_images[:params["grid_photos"]], all_targets[:params["grid_photos"]].cpu(),
                       params["n_grids"], seed=params["seed"])
    grid_images = grids.images.to(dev).repeat_interleave(4, dim=0)       # each grid once per quadrant
    grid_targets = grids.classes.to(dev).reshape(-1)
    grid_quadrants = torch.arange(4).repeat(len(grids))
    other = other_photo(params["other_photo"], images.shape[-1]).to(dev)
    rows, auc_rows, grid_rows = [], [], []
    for name in params["faithfulness_methods"]:
        # LIFT-CAM keeps its paper's reference (all-zero activations); the pixel attributions and A-FMI share
        # the chapter's reference image
        reference = None if name == "lift-cam" else params["faithfulness_reference"]
        for choice in method_layers(name, params["layers"]):
            layer = None if choice == INPUT else layer_for(model_name, choice)
            method = explaining.build(name, net, layer, method_options(name, reference, params, other))
            maps, seconds = explaining.explain(method, images, targets, chunk=params["chunk"])
            p, o = metrics.masked_probabilities(net, images, maps, targets, space="pixel")
            key = {"model": model_name, "method": name, "layer": choice}
            rows.append(pd.DataFrame({**key, "image": names[:n], "p": p.numpy(), "o": o.numpy(),
                                      "s_per_image": seconds}))
            for mode in ("deletion", "insertion"):
                auc = metrics.insertion_deletion(net, images, maps, targets, mode=mode,
                                                 steps=params["insertion_steps"])["auc_per_image"]
                auc_rows.append(pd.DataFrame({**key, "mode": mode, "image": names[:n],
                                              "auc": np.asarray(auc, dtype=float)}))
            grid_maps, _ = explaining.explain(method, grid_images, grid_targets, chunk=params["chunk"])
            pointing = metrics.grid_pointing_game(grid_maps, grid_quadrants.to(dev))
            grid_rows.append(pd.DataFrame({**key, "grid": np.arange(len(grid_targets)) // 4,
                                           "quadrant": grid_quadrants.numpy(),
                                           "class": grid_targets.cpu().numpy(),
                                           "hit": pointing.hit.cpu().numpy().astype(bool),
                                           "energy": pointing.energy.cpu().numpy().astype(float)}))
    return {"faithfulness": pd.concat(rows, ignore_index=True),
            "insertion_deletion": pd.concat(auc_rows, ignore_index=True),
            "grid": pd.concat(grid_rows, ignore_index=True)}


# ------------------------------------------------------------------------------------------------ running

SECTION_KEYS = {
    "insensitivity": ("layers", "photo_source", "seed", "chunk", "n_images", "references", "other_photo",
                      "blur_sigma", "noise_seed", "methods", "afmi_steps", "ig_steps", "topk_fraction",
                      "pooled_size"),
    "saturation": ("photo_source", "seed", "chunk", "saturation_pool", "saturation_images", "temperatures",
                   "saturation_reference", "saturation_steps", "insertion_steps", "blur_sigma", "noise_seed",
                   "other_photo"),
    "faithfulness": ("layers", "photo_source", "seed", "chunk", "faithfulness_images", "faithfulness_methods",
                     "faithfulness_reference", "insertion_steps", "grid_photos", "n_grids", "blur_sigma",
                     "noise_seed", "other_photo", "afmi_steps", "ig_steps"),
}
_COMPUTE = {"insensitivity": _insensitivity, "saturation": _saturation, "faithfulness": _faithfulness}


def run(params: Mapping[str, object], device: str = "cpu") -> dict[str, cache.Result]:
    """Every experiment of the chapter, cached: keys ``"<section>-<model>"`` for the sections
    ``insensitivity`` (every model of ``models``), ``saturation`` (``saturation_models``) and ``faithfulness``
    (``faithfulness_models``).
    Each cache entry depends only on the parameters of its own section."""
    params = check_params(params)
    out: dict[str, cache.Result] = {}
    for section, compute in _COMPUTE.items():
        model_names = params[{"saturation": "saturation_models", "faithfulness": "faithfulness_models"}
                             .get(section, "models")]
        for model_name in model_names:
            key = f"{section}-{model_name}"
            section_params = ({k: params[k] for k in SECTION_KEYS[section]}
                              | {k: params.get(k) for k in ("imagenet_root", "imagenet_labels")}
                              | {"model": model_name})
            out[key] = cache.cached(CHAPTER, key, section_params,
                                    lambda c=compute, m=model_name: c(m, params, device), device=device)
    return out


def _tables(results: Mapping[str, cache.Result], section: str, table: str) -> pd.DataFrame:
    frames = [r.tables[table] for key, r in results.items() if key.startswith(f"{section}-")]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---------------------------------------------------------------------------------------------- summaries

def insensitivity_summary(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """Per (model, method, layer): mean and standard deviation of the cross-reference rank correlation (a pair
    with a constant map counts as 0: it ranks nothing), mean top-k IoU, the same two means on the pooled maps,
    the number of map pairs and of pairs with a constant map."""
    pairs = _tables(results, "insensitivity", "pairs")
    pairs = pairs.assign(spearman_or_zero=pairs["spearman"].fillna(0.0),
                         pooled_or_zero=pairs["spearman_pooled"].fillna(0.0))
    grouped = pairs.groupby(["model", "method", "layer"], sort=False)
    return pd.DataFrame({
        "rank_correlation": grouped["spearman_or_zero"].mean(),
        "rank_correlation_sd": grouped["spearman_or_zero"].std(ddof=0),
        "topk_iou": grouped["topk_iou"].mean(),
        "rank_correlation_pooled": grouped["pooled_or_zero"].mean(),
        "topk_iou_pooled": grouped["topk_iou_pooled"].mean(),
        "pairs": grouped.size(),
        "constant_pairs": grouped["constant"].sum().astype(int),
    }).reset_index()


def pair_matrix(results: Mapping[str, cache.Result], model: str, method: str, layer: str,
                column: str = "spearman") -> pd.DataFrame:
    """Mean agreement of one method's maps (at one layer choice, or ``INPUT``) for every pair of references
    (symmetric, 1 on the diagonal)."""
    pairs = _tables(results, "insensitivity", "pairs")
    pairs = pairs[(pairs.model == model) & (pairs.method == method) & (pairs.layer == layer)]
    values = (pairs.assign(value=pairs[column].fillna(0.0))
              .groupby(["reference_a", "reference_b"])["value"].mean())
    names = list(dict.fromkeys([*pairs.reference_a, *pairs.reference_b]))
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for (a, b), v in values.items():
        matrix.loc[a, b] = matrix.loc[b, a] = v
    return matrix


def saturation_summary(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """Per (model, temperature, method): mean probability, share of probabilities that are exactly 1 in
    float32, mean gradient magnitude, A-FMI's mean completeness gap, mean rank correlation with the logit map
    (NaN, from a constant map, counts as 0) and mean deletion AUC."""
    table = _tables(results, "saturation", "saturation")
    table = table.assign(rho=table["rank_correlation_with_logit_map"].fillna(0.0))
    grouped = table.groupby(["model", "temperature", "method"], sort=False)
    return pd.DataFrame({
        "probability": grouped["probability"].mean(),
        "probability_is_one": grouped["probability_is_one"].mean(),
        "gradient": grouped["gradient"].mean(),
        "relative_gap": grouped["relative_gap"].mean(),
        "rank_correlation_with_logit_map": grouped["rho"].mean(),
        "deletion_auc": grouped["deletion_auc"].mean(),
        "images": grouped.size(),
    }).reset_index()


def faithfulness_summary(results: Mapping[str, cache.Result]) -> pd.DataFrame:
    """Per (model, method, layer): AD, AI, AG (%), insertion and deletion AUC (%), grid pointing hit rate and
    energy in the target quadrant (%), seconds per image, and the numbers of images and grid maps."""
    faith = _tables(results, "faithfulness", "faithfulness")
    aucs = _tables(results, "faithfulness", "insertion_deletion")
    grid = _tables(results, "faithfulness", "grid")
    rows = []
    for (model, method, layer), f in faith.groupby(["model", "method", "layer"], sort=False):
        a = aucs[(aucs.model == model) & (aucs.method == method) & (aucs.layer == layer)]
        g = grid[(grid.model == model) & (grid.method == method) & (grid.layer == layer)]
        rows.append({"model": model, "method": method, "layer": layer,
                     "AD": metrics.average_drop(f.p.to_numpy(), f.o.to_numpy()),
                     "AI": metrics.average_increase(f.p.to_numpy(), f.o.to_numpy()),
                     "AG": metrics.average_gain(f.p.to_numpy(), f.o.to_numpy()),
                     "insertion": 100 * a[a["mode"] == "insertion"].auc.mean(),
                     "deletion": 100 * a[a["mode"] == "deletion"].auc.mean(),
                     "grid_hit": 100 * g.hit.mean(), "grid_energy": 100 * g.energy.mean(),
                     "s_per_image": float(f.s_per_image.iloc[0]), "images": len(f), "grid_maps": len(g)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- verdicts

VERDICT_RULES = {
    "layer": (
        "Every rule judges A-FMI, LIFT-CAM and Grad-CAM at the first layer of the parameter `layers` (the "
        "pixel attributions explain the input); the tables give the other layer too."),
    "insensitivity": (
        "For each model and each pixel attribution P (integrated gradients, DeepLIFT), A-FMI counts as less "
        "sensitive to the reference than P when its mean cross-reference rank correlation and its mean top-k "
        "IoU are both higher than P's, on the maps at full resolution and on the maps pooled to the layer's "
        "grid. Reproduced: in every comparison; partly reproduced: in at least "
        "half; not reproduced: otherwise."),
    "faithfulness": (
        "Cells: (model, metric) for AG, insertion AUC (higher is better) and deletion AUC (lower is better), "
        "A-FMI against every other method of the faithfulness experiment. Reproduced: A-FMI is the best "
        "method in more than half of the cells; partly reproduced: A-FMI beats Grad-CAM (the local-gradient "
        "CAM) in more than half of the cells; not reproduced: otherwise."),
    "discrimination": (
        "Grid pointing game on 2×2 grids (chance: 25 %). On a model, A-FMI is class-discriminative when its "
        "hit rate is at least 50 % and at most 10 points below Grad-CAM's. Reproduced: on every model; "
        "partly reproduced: on some; not reproduced: on none."),
    "saturation": (
        "At the highest temperature (the most saturated probability), compare each method's probability map "
        "with its own logit map (mean rank correlation ρ) and score it by deletion AUC. Reproduced: A-FMI's "
        "ρ ≥ 0.5, at least 0.1 above Grad-CAM's, and A-FMI's deletion AUC no higher than Grad-CAM's; partly "
        "reproduced: one of the two comparisons with Grad-CAM holds; not reproduced: neither."),
}


def _at_layer(summary: pd.DataFrame, layer: str) -> pd.DataFrame:
    """The rows of the layer methods at ``layer`` and of the pixel attributions."""
    return summary[summary.layer.isin([layer, INPUT])]


def insensitivity_verdict(summary: pd.DataFrame, layer: str = "last") -> tuple[str, list[str]]:
    """The verdict of the reference-insensitivity claim from :func:`insensitivity_summary`, A-FMI at the layer
    choice ``layer`` (rule in ``VERDICT_RULES["insensitivity"]``), with one line per comparison."""
    wins, lines = [], []
    for model, s in _at_layer(summary, layer).groupby("model", sort=False):
        mine = s[s.method == "a-fmi"]
        if mine.empty:
            continue
        for other in PIXEL_METHODS:
            theirs = s[s.method == other]
            if theirs.empty:
                continue
            columns = ["rank_correlation", "topk_iou", "rank_correlation_pooled", "topk_iou_pooled"]
            ours = [float(mine[c].iloc[0]) for c in columns]
            theirs_ = [float(theirs[c].iloc[0]) for c in columns]
            wins.append(all(a > b for a, b in zip(ours, theirs_)))
            lines.append(f"{model}: A-FMI ρ {ours[0]:.2f} / IoU {ours[1]:.2f} (pooled {ours[2]:.2f} / "
                         f"{ours[3]:.2f}) vs {other} ρ {theirs_[0]:.2f} / IoU {theirs_[1]:.2f} (pooled "
                         f"{theirs_[2]:.2f} / {theirs_[3]:.2f})")
    if not wins:
        return "not testable here", lines
    if all(wins):
        return "reproduced", lines
    return ("partly reproduced" if sum(wins) >= len(wins) / 2 else "not reproduced"), lines


FAITHFULNESS_METRICS = {"AG": "higher", "insertion": "higher", "deletion": "lower"}


def faithfulness_verdict(summary: pd.DataFrame, layer: str = "last") -> tuple[str, list[str]]:
    """The verdict of the faithfulness claim from :func:`faithfulness_summary`, the layer methods at the layer
    choice ``layer`` (rule in ``VERDICT_RULES["faithfulness"]``), with one line per model."""
    best, over_grad_cam, lines = [], [], []
    for model, s in _at_layer(summary, layer).groupby("model", sort=False):
        mine = s[s.method == "a-fmi"]
        others = s[s.method != "a-fmi"]
        grad_cam = s[s.method == "grad-cam"]
        if mine.empty or others.empty:
            continue
        parts = []
        for metric, better in FAITHFULNESS_METRICS.items():
            value = float(mine[metric].iloc[0])
            rivals = others[metric].to_numpy(dtype=float)
            is_best = bool(value > rivals.max()) if better == "higher" else bool(value < rivals.min())
            best.append(is_best)
            if not grad_cam.empty:
                gc = float(grad_cam[metric].iloc[0])
                over_grad_cam.append(value > gc if better == "higher" else value < gc)
            rank = 1 + int((rivals > value).sum() if better == "higher" else (rivals < value).sum())
            parts.append(f"{metric} {value:.1f} (rank {rank} of {len(rivals) + 1})")
        lines.append(f"{model}: " + ", ".join(parts))
    if not best:
        return "not testable here", lines
    if sum(best) > len(best) / 2:
        return "reproduced", lines
    if over_grad_cam and sum(over_grad_cam) > len(over_grad_cam) / 2:
        return "partly reproduced", lines
    return "not reproduced", lines


def discrimination_verdict(summary: pd.DataFrame, layer: str = "last") -> tuple[str, list[str]]:
    """The verdict of the class-discrimination claim, A-FMI and Grad-CAM at the layer choice ``layer`` (rule
    in ``VERDICT_RULES["discrimination"]``)."""
    ok, lines = [], []
    for model, s in _at_layer(summary, layer).groupby("model", sort=False):
        mine = s[s.method == "a-fmi"]
        grad_cam = s[s.method == "grad-cam"]
        if mine.empty or grad_cam.empty:
            continue
        hit, gc_hit = float(mine.grid_hit.iloc[0]), float(grad_cam.grid_hit.iloc[0])
        ok.append(hit >= 50.0 and hit >= gc_hit - 10.0)
        lines.append(f"{model}: A-FMI hits {hit:.0f} % (energy {float(mine.grid_energy.iloc[0]):.0f} %), "
                     f"Grad-CAM {gc_hit:.0f} %")
    if not ok:
        return "not testable here", lines
    if all(ok):
        return "reproduced", lines
    return ("partly reproduced" if any(ok) else "not reproduced"), lines


def saturation_verdict(summary: pd.DataFrame) -> tuple[str, list[str]]:
    """The verdict of the gradient-saturation claim (rule in ``VERDICT_RULES["saturation"]``)."""
    holds, lines = [], []
    for model, s in summary.groupby("model", sort=False):
        top = s[s.temperature == s.temperature.max()].set_index("method")
        if not {"a-fmi", "grad-cam"} <= set(top.index):
            continue
        rho_a = float(top.loc["a-fmi", "rank_correlation_with_logit_map"])
        rho_g = float(top.loc["grad-cam", "rank_correlation_with_logit_map"])
        del_a, del_g = float(top.loc["a-fmi", "deletion_auc"]), float(top.loc["grad-cam", "deletion_auc"])
        holds.append((rho_a >= 0.5 and rho_a >= rho_g + 0.1, del_a <= del_g))
        lines.append(f"{model}, T = {float(s.temperature.max()):g}: ρ A-FMI {rho_a:.2f} vs Grad-CAM "
                     f"{rho_g:.2f}; deletion AUC A-FMI {100 * del_a:.1f} vs Grad-CAM {100 * del_g:.1f}")
    if not holds:
        return "not testable here", lines
    if all(a and b for a, b in holds):
        return "reproduced", lines
    if any(a or b for a, b in holds):
        return "partly reproduced", lines
    return "not reproduced", lines


def claims(params: Mapping[str, object], device: str = "cpu") -> pd.DataFrame:
    """The A-FMI rows of the reproducibility report (one per claim of the abstract); runs (or reads from the
    cache) every experiment of the chapter."""
    return claims_from(run(params, device), list(params["layers"])[0])


def claims_from(results: Mapping[str, cache.Result], layer: str = "last") -> pd.DataFrame:
    """The claims table of :func:`claims` from results that :func:`run` returned; the verdicts judge the layer
    methods at the layer choice ``layer`` (the first of the parameter ``layers``)."""
    quoted = "no figure; the abstract claims it qualitatively"
    rows = []
    verdict, lines = insensitivity_verdict(insensitivity_summary(results), layer)
    rows.append({"claim": "Insensitive to the choice of reference image", "verdict": verdict,
                 "published": f"{quoted} (\"insensitivity to the choice of reference\")",
                 "ours": "; ".join(lines)})
    verdict, lines = faithfulness_verdict(faithfulness_summary(results), layer)
    rows.append({"claim": "Faithful, and better than popular attribution methods", "verdict": verdict,
                 "published": f"{quoted} (\"faithfulness\", \"superior explanation performance\")",
                 "ours": "; ".join(lines)})
    verdict, lines = discrimination_verdict(faithfulness_summary(results), layer)
    rows.append({"claim": "Class-discriminative", "verdict": verdict,
                 "published": f"{quoted} (\"class discriminability\")", "ours": "; ".join(lines)})
    verdict, lines = saturation_verdict(saturation_summary(results))
    rows.append({"claim": "Addresses gradient saturation", "verdict": verdict,
                 "published": f"{quoted} (\"to address the gradient saturation problem\")",
                 "ours": "; ".join(lines)})
    table = pd.DataFrame(rows).assign(paper=PAPER, source=SOURCE)
    return table.loc[:, ["paper", "claim", "published", "ours", "verdict", "source"]]
