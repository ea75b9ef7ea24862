"""Stability of saliency maps across models: IoU of thresholded maps (LFI-CAM, Lee et al., ICCV 2021).

The LFI-CAM authors train one architecture with several hyper-parameter settings, explain the same test
images with every trained model, binarise each attention map and report the IoU of the binary maps averaged
over images and over the pairs of models (their repository's ``asset/IOU_Test.png``). Following their
evaluation script, a pixel is foreground when its value is *strictly* greater than the threshold, the IoU is
computed per image and then averaged, and two empty masks have IoU 1 (their script adds 1e-6 to both the
intersection and the union, which gives exactly 1 for two empty masks and a negligible shift otherwise; here
the convention is exact and the shift is absent).
Their script's default threshold is 0 (any positive attention); ``threshold_maps`` defaults to 0.5, so pass
``threshold=0`` to follow it.

Outputs are float tensors on the maps' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from camrepro.metrics._validation import as_tensor, check_maps


@dataclass(frozen=True)
class Quantile:
    """Per-image threshold at the ``q``-quantile of the map's values (linear interpolation), 0 ≤ q ≤ 1.

    ``threshold_maps(maps, Quantile(0.9))`` keeps roughly the top 10 % of each map's pixels.
    """

    q: float

    def __post_init__(self) -> None:
        if isinstance(self.q, bool) or not isinstance(self.q, (int, float)) or not 0.0 <= self.q <= 1.0:
            raise ValueError(f"Quantile q must be a number in [0, 1], got {self.q!r}")


Threshold = float | str | Quantile


def threshold_maps(maps: torch.Tensor | np.ndarray, threshold: Threshold = 0.5) -> torch.Tensor:
    """Binary foreground masks [N, H, W] of maps [N, H, W] in [0, 1]: value > threshold (strict).

    ``threshold`` is a number in [0, 1] (the same for every map), ``"mean"`` (each map's own mean) or a
    :class:`Quantile` (each map's own quantile).
    """
    maps = check_maps(maps)
    if isinstance(threshold, Quantile):
        values = maps.flatten(1)
        if values.dtype not in (torch.float32, torch.float64):  # torch.quantile accepts only these two
            values = values.float()
        cut = torch.quantile(values, threshold.q, dim=1).to(maps.dtype).view(-1, 1, 1)
    elif isinstance(threshold, str):
        if threshold != "mean":
            raise ValueError(
                f"unknown threshold {threshold!r}; expected a number in [0, 1], 'mean' or Quantile(q)"
            )
        cut = maps.mean(dim=(1, 2), keepdim=True)
    elif isinstance(threshold, (int, float, np.integer, np.floating)) and not isinstance(threshold, bool):
        if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"a numeric threshold must be in [0, 1], got {threshold!r}")
        cut = torch.tensor(float(threshold), dtype=maps.dtype, device=maps.device)
    else:
        raise TypeError(f"threshold must be a number, 'mean' or Quantile(q), got {type(threshold).__name__}")
    return maps > cut


def _check_binary(masks: object, name: str) -> torch.Tensor:
    tensor = as_tensor(masks, name)
    if tensor.dtype != torch.bool:
        if tensor.is_complex() or not bool(((tensor == 0) | (tensor == 1)).all()):
            raise ValueError(f"{name} must be boolean or contain only 0 and 1")
        tensor = tensor != 0
    if tensor.dim() != 3:
        raise ValueError(f"{name} must have shape [N, H, W], got {tuple(tensor.shape)}")
    return tensor


def iou(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-image intersection over union of binary masks [N, H, W]; two empty masks have IoU 1.0.

    Returns a float tensor [N].
    """
    a, b = _check_binary(a, "a"), _check_binary(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    b = b.to(a.device)
    intersection = (a & b).flatten(1).sum(dim=1)
    union = (a | b).flatten(1).sum(dim=1)
    ratio = intersection.double() / union.clamp(min=1).double()
    return torch.where(union == 0, torch.ones_like(ratio), ratio).to(torch.get_default_dtype())


class PairwiseIoU(NamedTuple):
    """Result of :func:`mean_pairwise_iou`."""

    mean: float
    """mean over images and over the M(M−1)/2 pairs of models."""
    matrix: torch.Tensor
    """[M, M]: entry (i, j) is the mean over images of the IoU between models i and j; the diagonal is 1."""
    per_image: torch.Tensor
    """[N]: each image's IoU averaged over the pairs of models."""


def mean_pairwise_iou(
    maps_per_model: list[torch.Tensor] | tuple[torch.Tensor, ...], threshold: Threshold = 0.5
) -> PairwiseIoU:
    """Mean pairwise IoU of thresholded maps: the same N images explained by each of M ≥ 2 models.

    ``maps_per_model`` is a sequence of M tensors [N, H, W] in [0, 1]; every map is binarised with
    :func:`threshold_maps` and the IoU of every image is taken for every pair of models (LFI-CAM stability).
    """
    if not isinstance(maps_per_model, (list, tuple)):
        raise TypeError(f"maps_per_model must be a list of map tensors, got {type(maps_per_model).__name__}")
    if len(maps_per_model) < 2:
        raise ValueError(f"mean pairwise IoU needs maps from at least 2 models, got {len(maps_per_model)}")
    binary = [threshold_maps(maps, threshold) for maps in maps_per_model]
    shapes = {tuple(b.shape) for b in binary}
    if len(shapes) != 1:
        raise ValueError(
            f"every model must explain the same images at the same size, got shapes {sorted(shapes)}"
        )
    count = len(binary)
    device = binary[0].device
    matrix = torch.eye(count, device=device)
    pair_ious = []
    for i in range(count):
        for j in range(i + 1, count):
            values = iou(binary[i], binary[j].to(device))
            pair_ious.append(values)
            matrix[i, j] = matrix[j, i] = values.mean()
    per_image = torch.stack(pair_ious).mean(dim=0)
    return PairwiseIoU(mean=float(per_image.mean()), matrix=matrix, per_image=per_image)
