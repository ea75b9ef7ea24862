"""Localisation of saliency maps against ground-truth regions (boxes or masks).

- Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016): a hit when
  the map's maximum falls inside the object, optionally within a pixel tolerance.
- Energy-based pointing game (Wang et al., "Score-CAM", CVPR-W 2020, Sec. 5.3): the fraction of the map's
  total value inside the object's box.
- Grid pointing game: the same two measures on a 2 × 2 grid of images, the target's quadrant being the region.
- IoU of the thresholded map with the box.

Regions are masks [B, H, W] (bool or 0/1) or boxes [B, 4] as ``(x0, y0, x1, y1)`` in pixels, x along the
width, y along the height, **inclusive-exclusive**: pixel (row r, column c) is inside when x0 ≤ c < x1 and
y0 ≤ r < y1, so ``(0, 0, W, H)`` is the whole image. Boxes are clipped to the image; a region that covers no
pixel is an error. Outputs are tensors [B] on the maps' device.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from camrepro.metrics._validation import as_tensor, check_maps, regions_to_masks
from camrepro.metrics.stability import Threshold, iou, threshold_maps

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def _maps_and_regions(maps: object, regions: object) -> tuple[torch.Tensor, torch.Tensor]:
    maps = check_maps(maps)
    batch, height, width = maps.shape
    return maps, regions_to_masks(regions, batch, height, width, maps.device)


def pointing_game(
    maps: torch.Tensor | np.ndarray, masks_or_boxes: torch.Tensor | np.ndarray, tolerance: float = 0
) -> torch.Tensor:
    """Whether each map's maximum lies in its ground-truth region, as a bool tensor [B].

    The maximum is the first maximal pixel in row-major order (deterministic for flat maps). With
    ``tolerance`` = t > 0 it is a hit when some pixel of the region lies within Euclidean distance t of the
    maximum (Zhang et al. use 15 px at ImageNet resolution).
    """
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float, np.integer, np.floating))
        or not (math.isfinite(tolerance) and tolerance >= 0)
    ):
        raise ValueError(f"tolerance must be a non-negative number of pixels, got {tolerance!r}")
    maps, regions = _maps_and_regions(maps, masks_or_boxes)
    batch, height, width = maps.shape
    peak = maps.flatten(1).argmax(dim=1)
    peak_row, peak_col = peak // width, peak % width
    if tolerance == 0:
        return regions[torch.arange(batch, device=maps.device), peak_row, peak_col]
    rows = torch.arange(height, device=maps.device).view(1, height, 1)
    cols = torch.arange(width, device=maps.device).view(1, 1, width)
    squared = (rows - peak_row.view(-1, 1, 1)).square() + (cols - peak_col.view(-1, 1, 1)).square()
    return (regions & (squared <= tolerance**2)).flatten(1).any(dim=1)


def energy_pointing_game(
    maps: torch.Tensor | np.ndarray, masks_or_boxes: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Fraction of each map's energy (sum of its values) inside its region, a float tensor [B] in [0, 1].

    A map that is zero everywhere has no energy inside the region and scores 0.
    """
    maps, regions = _maps_and_regions(maps, masks_or_boxes)
    total = maps.flatten(1).sum(dim=1)
    inside = (maps * regions).flatten(1).sum(dim=1)
    return torch.where(
        total > 0, inside / total.clamp(min=torch.finfo(maps.dtype).tiny), torch.zeros_like(total)
    )


def quadrant_boxes(quadrant: object, height: int, width: int) -> torch.Tensor:
    """Boxes [B, 4] (x0, y0, x1, y1) of 2 × 2 grid cells: 0 top-left, 1 top-right, 2 bottom-left,
    3 bottom-right; height and width must be even."""
    if height % 2 or width % 2:
        raise ValueError(f"a 2x2 grid needs an even height and width, got {height}x{width}")
    if isinstance(quadrant, (int, np.integer)) and not isinstance(quadrant, bool):
        quadrant = torch.tensor([int(quadrant)])
    elif isinstance(quadrant, (list, tuple)):
        if not all(isinstance(q, (int, np.integer)) and not isinstance(q, bool) for q in quadrant):
            raise TypeError("quadrant must contain ints in 0..3")
        quadrant = torch.tensor([int(q) for q in quadrant], dtype=torch.long)
    else:
        quadrant = as_tensor(quadrant, "quadrant")
        if quadrant.dtype == torch.bool or quadrant.is_floating_point() or quadrant.is_complex():
            raise TypeError(f"quadrant must be an integer tensor, got dtype {quadrant.dtype}")
    quadrant = quadrant.long().flatten()
    if bool(((quadrant < 0) | (quadrant > 3)).any()):
        raise ValueError(f"quadrant must be in 0..3 {QUADRANTS}, got {quadrant.tolist()}")
    half_h, half_w = height // 2, width // 2
    x0 = (quadrant % 2) * half_w
    y0 = (quadrant // 2) * half_h
    return torch.stack([x0, y0, x0 + half_w, y0 + half_h], dim=1)


class GridPointing(NamedTuple):
    """Result of :func:`grid_pointing_game`: both tensors are [B]."""

    hit: torch.Tensor
    """bool: the map's maximum lies in the target quadrant."""
    energy: torch.Tensor
    """float: fraction of the map's energy inside the target quadrant (chance level 0.25 for a flat map)."""


def grid_pointing_game(maps: torch.Tensor | np.ndarray, quadrant: object) -> GridPointing:
    """Grid pointing game on 2 × 2 grids: ``quadrant`` is the target's cell per image (an int for all, a
    sequence or a LongTensor [B]) numbered 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right."""
    maps = check_maps(maps)
    batch, height, width = maps.shape
    boxes = quadrant_boxes(quadrant, height, width)
    if boxes.shape[0] == 1:
        boxes = boxes.expand(batch, 4)
    if boxes.shape[0] != batch:
        raise ValueError(f"quadrant must give one cell per image ({batch}), got {boxes.shape[0]}")
    boxes = boxes.to(maps.device)
    return GridPointing(hit=pointing_game(maps, boxes), energy=energy_pointing_game(maps, boxes))


def iou_with_box(
    maps: torch.Tensor | np.ndarray, boxes: torch.Tensor | np.ndarray, threshold: Threshold = 0.5
) -> torch.Tensor:
    """IoU [B] between each map binarised by :func:`camrepro.metrics.stability.threshold_maps` (value >
    threshold) and its box (or mask)."""
    maps, regions = _maps_and_regions(maps, boxes)
    return iou(threshold_maps(maps, threshold), regions)
