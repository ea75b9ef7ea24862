"""How much a method's maps of one image agree across references, and the pieces the chapter's experiments
need beyond the kit: the other-photo reference, a probability-output wrapper, and A-FMI's completeness
check."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from camrepro import metrics


def pooled(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Maps [N, H, W] averaged over a size × size grid of cells (adaptive average pooling):
    [N, size, size]."""
    return torch.nn.functional.adaptive_avg_pool2d(maps.unsqueeze(1), size).squeeze(1)


def cross_reference_agreement(maps: Mapping[str, torch.Tensor], topk_fraction: float,
                              pooled_size: int | None = None) -> pd.DataFrame:
    """Agreement of one method's maps of the same images under different references.

    ``maps``: reference name → maps [N, H, W] of the same N images. One row per image (its index) and
    unordered pair of references (in the order given): ``spearman`` (rank correlation of the pixels; NaN when
    either map is constant, which carries no ranking), ``topk_iou`` (IoU of the ``topk_fraction`` most salient
    pixels) and ``constant`` (either map is constant). With ``pooled_size``, the same two measures on the maps
    averaged over a ``pooled_size`` × ``pooled_size`` grid (``spearman_pooled``, ``topk_iou_pooled``): one
    common resolution for every method, since a map upsampled from a 7 × 7 layer is smooth by construction
    and smooth maps agree more easily than a pixel attribution's grainy ones.
    """
    names = list(maps)
    if len(names) < 2:
        raise ValueError(f"cross-reference agreement needs maps under at least two references, got {names}")
    rows = []
    for a, b in itertools.combinations(names, 2):
        rho = metrics.map_rank_correlation(maps[a], maps[b]).numpy()
        iou = metrics.topk_iou(maps[a], maps[b], topk_fraction).numpy()
        flat_a, flat_b = maps[a].flatten(1), maps[b].flatten(1)
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


def other_photo(name: str, size: int) -> torch.Tensor:
    """The photo ``<source>/<stem>`` (e.g. ``skimage/coffee``) as a [1, 3, size, size] reference image."""
    from camrepro.data.photos import load_photos

    source = name.split("/", 1)[0]
    photos = load_photos(source, size=size)
    if name not in photos.names:
        raise ValueError(f"other_photo {name!r} is not one of the {source!r} photos: {photos.names[:10]}…")
    return photos.images[photos.names.index(name)].unsqueeze(0)


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


@torch.no_grad()
def completeness_rows(net: nn.Module, layer: str, images: torch.Tensor, references: torch.Tensor,
                      targets: torch.Tensor, importance: torch.Tensor, chunk: int = 8) -> pd.DataFrame:
    """A-FMI's completeness per image from its importances φ [N, K] (as the map store keeps them): ``score``
    F_c(x), ``reference_score`` F_c(x′), ``sum_phi`` Σ_k φ_k, ``relative_gap``
    |Σφ − (F_c(x) − F_c(x′))| / |F_c(x) − F_c(x′)| and ``reference_ratio`` ‖A(x′)‖ / ‖A(x)‖ at ``layer``
    (how large the reference's activations are next to the image's: near 0, ΔA ≈ A(x) whatever the
    reference)."""
    captured: list[torch.Tensor] = []
    hook = net.get_submodule(layer).register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    scores, reference_scores, ratios = [], [], []
    try:
        for start in range(0, images.shape[0], chunk):
            x, x_ref = images[start:start + chunk], references[start:start + chunk]
            t = targets[start:start + chunk].view(-1, 1)
            captured.clear()
            logits = net(torch.cat([x, x_ref]))
            acts = captured[-1]
            b = x.shape[0]
            scores.append(logits[:b].gather(1, t).squeeze(1))
            reference_scores.append(logits[b:].gather(1, t).squeeze(1))
            ratios.append(acts[b:].flatten(1).norm(dim=1) / acts[:b].flatten(1).norm(dim=1).clamp_min(1e-12))
    finally:
        hook.remove()
    score = torch.cat(scores).double().cpu()
    reference_score = torch.cat(reference_scores).double().cpu()
    sum_phi = importance.double().sum(dim=1).cpu()
    difference = score - reference_score
    gap = (sum_phi - difference).abs() / difference.abs().clamp_min(1e-12)
    return pd.DataFrame({"score": score.numpy(), "reference_score": reference_score.numpy(),
                         "sum_phi": sum_phi.numpy(), "relative_gap": gap.numpy(),
                         "reference_ratio": torch.cat(ratios).double().cpu().numpy()})
