"""Faithfulness of saliency maps: Average Drop / Increase / Gain and insertion / deletion curves.

Average Drop (AD) and Average Increase (AI) come from Chattopadhay et al., "Grad-CAM++" (WACV 2018); Average
Gain (AG) and the protocol used here come from Zhang et al., "Opti-CAM" (CVIU 248, 2024, Sec. 4): with p the
softmax probability of the target class on the image and o the same on the image multiplied by its map,

    AD = 1/N Σ [p − o]₊ / p · 100,   AI = 1/N Σ 1[p < o] · 100,   AG = 1/N Σ [o − p]₊ / (1 − p) · 100.

The map multiplies the image in [0, 1] pixel space, before the network's mean/std normalisation, so masked
pixels are black (``space="pixel"``); ``space="normalized"`` multiplies the normalised image instead, so
masked pixels take the dataset mean (the convention of most public CAM evaluation code).

Insertion / deletion follow Petsiuk et al., "RISE" (BMVC 2018), with the settings of Opti-CAM's Table 3:
deletion replaces the most salient pixels first with zeros, insertion starts from a Gaussian-blurred copy of
the image and puts the most salient pixels back first; the curve is the target-class probability and the
score is its area over the fraction of pixels changed.

Every function evaluates the model in eval mode (each module's ``training`` flag is restored afterwards)
under ``torch.no_grad`` (``inference_mode`` measured no faster), in chunks of ``batch_size`` images on the
images' device (default :func:`camrepro.tensors.default_batch_size`), on channels-last inputs on the CPU
(:func:`camrepro.tensors.forward_channels_last`) and, in pixel space, through the model's folded copy
(:func:`camrepro.models.folded.folded_forward`): the same probabilities up to rounding, in well under half
the time of contiguous passes of the model. Probabilities are
returned as float64 CPU values: the softmax is taken in float64 so that a probability close to 1 keeps the
precision that AG's ``1 − p`` denominator needs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from camrepro.metrics._validation import (
    as_float_tensor,
    check_batch_size,
    check_fits_model,
    check_images,
    check_maps,
    check_target_range,
    check_targets,
)
from camrepro.models.folded import folded_forward
from camrepro.models.masking import SPACES, masked_forward
from camrepro.progress import progress
from camrepro.tensors import (  # noqa: F401  (gaussian_*, evaluation_mode: re-exported)
    as_logits, default_batch_size, evaluation_mode, forward_channels_last, gaussian_blur,
    gaussian_kernel1d,
)

# Denominator floor of AD and AG. When p = 0 the AD numerator [p − o]₊ is 0 as well (o ≥ 0), and when p = 1
# the AG numerator [o − p]₊ is 0 (o ≤ 1); flooring the denominator makes those terms exactly 0 instead of
# 0/0 = NaN. Because [p − o]₊ ≤ p and [o − p]₊ ≤ 1 − p, no term can exceed 1 for any p, so the floor never
# inflates a score.
PROBABILITY_EPS = 1e-12

DELETION_DEFAULT_BASELINE = "zeros"
INSERTION_DEFAULT_BASELINE = "blur"


def _target_probabilities(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax probability of each row's target class, in float64 on the CPU."""
    if logits.dim() != 2 or logits.shape[0] != targets.shape[0]:
        raise ValueError(
            f"the model must return logits [B, classes], got shape {tuple(logits.shape)} "
            f"for a batch of {targets.shape[0]}"
        )
    check_target_range(targets, logits.shape[1])
    probabilities = torch.softmax(logits.detach().to("cpu", torch.float64), dim=1)
    return probabilities.gather(1, targets.cpu().view(-1, 1)).squeeze(1)


def _check_space(space: str) -> str:
    if space not in SPACES:
        raise ValueError(f"unknown masking space {space!r}; expected one of {SPACES}")
    return space


def _forward_only(model: nn.Module, images: torch.Tensor, space: str) -> nn.Module:
    """The network a loop of forward passes calls (in eval mode): the model's folded copy in pixel space
    (:func:`camrepro.models.folded.folded_forward`), the model itself in normalised space, where the mask is a
    hook on its Normalize module."""
    return folded_forward(model, images) if space == "pixel" else model


def masked_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: int | list[int] | torch.Tensor,
    *,
    space: str = "pixel",
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target-class probabilities on each image (p) and on the image multiplied by its map (o).

    images: [B, C, H, W] in [0, 1]; maps: [B, H, W] in [0, 1]; targets: an int, a sequence or a LongTensor of
    B class indices. The masked image goes through :func:`camrepro.models.masking.masked_forward` with
    ``space``. Returns two float64 CPU tensors [B].
    """
    images = check_fits_model(model, check_images(images))
    batch, _, height, width = images.shape
    maps = check_maps(maps, shape=(batch, height, width)).to(device=images.device, dtype=images.dtype)
    targets = check_targets(targets, batch, images.device)
    _check_space(space)
    batch_size = check_batch_size(default_batch_size(images.device) if batch_size is None else batch_size)
    p_parts, o_parts = [], []

    with torch.no_grad(), evaluation_mode(model):
        net = _forward_only(model, images, space)

        def masked(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return masked_forward(net, x, m, space)

        for start in range(0, batch, batch_size):
            chunk = slice(start, start + batch_size)
            # p and o go through the same network and layout, so an all-ones map gives o == p exactly
            # (Fake-CAM's AI)
            p_parts.append(_target_probabilities(
                as_logits(forward_channels_last(net, images[chunk], remember=model), model), targets[chunk]))
            o = forward_channels_last(masked, images[chunk], maps[chunk], remember=model)
            o_parts.append(_target_probabilities(as_logits(o, model), targets[chunk]))
    return torch.cat(p_parts), torch.cat(o_parts)


def _probability_pair(p: object, o: object) -> tuple[np.ndarray, np.ndarray]:
    """p and o as float64 numpy vectors of equal length with finite values in [0, 1]."""
    arrays = []
    for name, value in (("p", p), ("o", o)):
        tensor = as_float_tensor(value, name).detach().to("cpu", torch.float64)
        if tensor.dim() != 1 or tensor.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty vector [N], got shape {tuple(tensor.shape)}")
        if not bool(torch.isfinite(tensor).all()) or bool((tensor < 0).any()) or bool((tensor > 1).any()):
            raise ValueError(f"{name} must hold probabilities in [0, 1]")
        arrays.append(tensor.numpy())
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"p and o must have the same length, got {arrays[0].shape[0]} and {arrays[1].shape[0]}"
        )
    return arrays[0], arrays[1]


def average_drop(p: torch.Tensor | np.ndarray, o: torch.Tensor | np.ndarray) -> float:
    """AD = mean over images of [p − o]₊ / p, in percent (lower is better).

    Terms with p = 0 are 0 (see ``PROBABILITY_EPS``).
    """
    p, o = _probability_pair(p, o)
    return float(np.mean(np.maximum(p - o, 0.0) / np.maximum(p, PROBABILITY_EPS)) * 100.0)


def average_increase(p: torch.Tensor | np.ndarray, o: torch.Tensor | np.ndarray) -> float:
    """AI = share of images whose masked probability is higher: mean 1[p < o] · 100 (higher is better)."""
    p, o = _probability_pair(p, o)
    return float(np.mean(p < o) * 100.0)


def average_gain(p: torch.Tensor | np.ndarray, o: torch.Tensor | np.ndarray) -> float:
    """AG = mean over images of [o − p]₊ / (1 − p), in percent (Opti-CAM, Sec. 4; higher is better).

    Terms with p = 1 are 0 (see ``PROBABILITY_EPS``).
    """
    p, o = _probability_pair(p, o)
    return float(np.mean(np.maximum(o - p, 0.0) / np.maximum(1.0 - p, PROBABILITY_EPS)) * 100.0)


def drop_increase_gain(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: int | list[int] | torch.Tensor,
    *,
    space: str = "pixel",
    batch_size: int | None = None,
) -> dict[str, float | np.ndarray]:
    """AD, AI and AG of ``maps`` in one pass: ``{"AD", "AI", "AG"}`` as floats and ``{"p", "o"}`` as float64
    numpy arrays [B] (see :func:`masked_probabilities` for the arguments)."""
    p, o = masked_probabilities(model, images, maps, targets, space=space, batch_size=batch_size)
    return {
        "AD": average_drop(p, o),
        "AI": average_increase(p, o),
        "AG": average_gain(p, o),
        "p": p.numpy(),
        "o": o.numpy(),
    }


def _resolve_baseline(
    baseline: str | torch.Tensor | None,
    mode: str,
    images: torch.Tensor,
    blur_sigma: float,
    blur_kernel_size: int,
) -> torch.Tensor | None:
    """The baseline image batch [B, C, H, W], or None for the zero baseline (handled by masked_forward)."""
    if baseline is None:
        baseline = DELETION_DEFAULT_BASELINE if mode == "deletion" else INSERTION_DEFAULT_BASELINE
    if isinstance(baseline, str):
        if baseline == "zeros":
            return None
        if baseline == "blur":
            return gaussian_blur(images, blur_sigma, blur_kernel_size)
        raise ValueError(f"unknown baseline {baseline!r}; expected 'zeros', 'blur' or an image tensor")
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline must be 'zeros', 'blur', None or a tensor, got {type(baseline).__name__}")
    if not baseline.is_floating_point():
        raise TypeError(f"baseline tensor must be floating point, got dtype {baseline.dtype}")
    if baseline.dim() == 3:
        baseline = baseline.unsqueeze(0)
    if (
        baseline.dim() != 4
        or baseline.shape[1:] != images.shape[1:]
        or baseline.shape[0] not in (1, images.shape[0])
    ):
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} does not match images of shape "
            f"{tuple(images.shape)}; expected [C, H, W], [1, C, H, W] or [B, C, H, W]"
        )
    return baseline.to(device=images.device, dtype=images.dtype).expand_as(images)


def saliency_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel of each map, 0 for the most salient, as a LongTensor [B, H·W].

    Ties are broken by a stable sort, so among equal values the pixel that comes first in row-major order is
    ranked first; the ordering is deterministic on every device.
    """
    flat = maps.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def insertion_deletion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: int | list[int] | torch.Tensor,
    *,
    mode: str = "deletion",
    steps: int = 224,
    pixels_per_step: int | None = None,
    baseline: str | torch.Tensor | None = None,
    blur_sigma: float = 5.0,
    blur_kernel_size: int = 11,
    space: str = "pixel",
    batch_size: int | None = None,
) -> dict[str, float | np.ndarray]:
    """Deletion or insertion curve of each map and its area under the curve (RISE; Opti-CAM Table 3).

    Pixels are ordered by decreasing saliency (stable sort: ties in row-major order). Point i of the curve,
    i = 0 … ``steps``, changes the first n_i = min(i · ``pixels_per_step``, H·W) pixels of that order:

    - ``mode="deletion"``: those pixels are replaced by the baseline (default ``"zeros"``: black in pixel
      space, the dataset mean with ``space="normalized"``); point 0 is the image itself.
    - ``mode="insertion"``: those pixels are taken from the image, all others from the baseline (default
      ``"blur"``: :func:`gaussian_blur` with ``blur_sigma`` and ``blur_kernel_size``); point 0 is the
      baseline.

    A baseline tensor ([C, H, W] or [B, C, H, W], in pixel space) is blended as
    ``baseline + keep · (image − baseline)``; since the network's normalisation is affine per channel, this
    blend is the same computation in either space, so ``space`` only matters for the zero baseline.

    The curve value is the softmax probability of the target class. The AUC is the trapezoid rule over the
    fraction of pixels changed, n_i / (H·W), which runs from 0 to 1. ``pixels_per_step=None`` uses
    ceil(H·W / steps); the paper's setting at 224 × 224 is ``steps=224, pixels_per_step=224``. Deviation from
    RISE's code: when the last step is partial, the trapezoid uses the true fraction of that step instead
    of a full step's width. Curves of all images are evaluated together, ``batch_size`` masked copies per
    forward pass.

    Returns ``{"auc": mean AUC (float), "auc_per_image": [B], "curves": [B, steps + 1], "fractions":
    [steps + 1]}``, all float64 numpy arrays.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    images = check_fits_model(model, check_images(images))
    batch, _, height, width = images.shape
    maps = check_maps(maps, shape=(batch, height, width)).to(images.device)
    targets = check_targets(targets, batch, images.device)
    _check_space(space)
    batch_size = check_batch_size(default_batch_size(images.device) if batch_size is None else batch_size)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    n_pixels = height * width
    if pixels_per_step is None:
        pixels_per_step = math.ceil(n_pixels / steps)
    if isinstance(pixels_per_step, bool) or not isinstance(pixels_per_step, int) or pixels_per_step < 1:
        raise ValueError(f"pixels_per_step must be a positive int or None, got {pixels_per_step!r}")
    if steps * pixels_per_step < n_pixels:
        raise ValueError(
            f"{steps} steps of {pixels_per_step} pixels change only {steps * pixels_per_step} of the "
            f"{n_pixels} pixels, so the curve would not reach fraction 1; raise steps or "
            "pixels_per_step, or leave pixels_per_step=None"
        )
    base = _resolve_baseline(baseline, mode, images, blur_sigma, blur_kernel_size)

    points = steps + 1
    counts = torch.clamp(torch.arange(points, device=images.device) * pixels_per_step, max=n_pixels)
    ranks = saliency_ranks(maps)
    curves = torch.empty(batch * points, dtype=torch.float64)
    starts = range(0, batch * points, batch_size)
    with torch.no_grad(), evaluation_mode(model):
        net = _forward_only(model, images, space)

        def masked(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return masked_forward(net, x, m, space)

        def blended(background: torch.Tensor, keep: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return net(background + keep * (x - background))

        for start in progress(starts, total=len(starts), desc=f"{mode} steps", unit="batch"):
            pair = torch.arange(start, min(start + batch_size, batch * points), device=images.device)
            image_index, point_index = pair // points, pair % points
            changed = ranks[image_index] < counts[point_index].unsqueeze(1)
            keep = ~changed if mode == "deletion" else changed
            keep = keep.view(-1, height, width).to(images.dtype)
            chosen = images[image_index]
            if base is None:
                logits = forward_channels_last(masked, chosen, keep, remember=model)
            else:
                logits = forward_channels_last(blended, base[image_index], keep.unsqueeze(1), chosen,
                                               remember=model)
            curves[start : start + pair.shape[0]] = _target_probabilities(
                as_logits(logits, model), targets[image_index])
    curves = curves.view(batch, points)
    fractions = counts.to("cpu", torch.float64) / n_pixels
    auc = torch.trapezoid(curves, x=fractions, dim=1)
    return {
        "auc": float(auc.mean()),
        "auc_per_image": auc.numpy(),
        "curves": curves.numpy(),
        "fractions": fractions.numpy(),
    }
