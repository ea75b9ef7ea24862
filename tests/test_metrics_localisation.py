"""Pointing game, energy pointing game, grid pointing game and IoU with a box on crafted maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import camrepro  # noqa: F401
from camrepro.metrics import (
    energy_pointing_game,
    grid_pointing_game,
    iou_with_box,
    pointing_game,
    quadrant_boxes,
)


def peak_map(row: int, col: int, size: int = 4) -> torch.Tensor:
    """A [1, size, size] map of 0.1 with a single 1.0 at (row, col)."""
    m = torch.full((1, size, size), 0.1)
    m[0, row, col] = 1.0
    return m


def box(x0, y0, x1, y1) -> torch.Tensor:
    return torch.tensor([[x0, y0, x1, y1]])


def test_pointing_game_boxes_are_inclusive_exclusive():
    m = peak_map(1, 2)  # maximum at row 1, column 2
    assert pointing_game(m, box(2, 1, 3, 2)).tolist() == [True]  # exactly that pixel
    assert pointing_game(m, box(0, 0, 2, 2)).tolist() == [False]  # x1 = 2 excludes column 2
    assert pointing_game(m, box(0, 0, 4, 1)).tolist() == [False]  # y1 = 1 excludes row 1
    assert pointing_game(m, box(0, 0, 4, 4)).tolist() == [True]
    assert pointing_game(m, box(2, 1, 100, 100)).tolist() == [True]  # clipped to the image


def test_pointing_game_masks_and_batch():
    maps = torch.cat([peak_map(0, 0), peak_map(3, 3), peak_map(2, 1)])
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = True
    masks[1, 0, 0] = True
    masks[2, 2, 1] = True
    assert pointing_game(maps, masks).tolist() == [True, False, True]
    assert pointing_game(maps.numpy(), masks.int().numpy()).tolist() == [True, False, True]


def test_pointing_game_tolerance_is_euclidean():
    m = peak_map(1, 1)
    target = box(3, 1, 4, 2)  # pixel (1, 3): distance 2 from the maximum
    assert pointing_game(m, target, tolerance=1.9).tolist() == [False]
    assert pointing_game(m, target, tolerance=2).tolist() == [True]
    diagonal = box(2, 2, 3, 3)  # pixel (2, 2): distance sqrt(2)
    assert pointing_game(m, diagonal, tolerance=1).tolist() == [False]
    assert pointing_game(m, diagonal, tolerance=math.sqrt(2) + 1e-9).tolist() == [True]


def test_pointing_game_flat_map_points_at_first_pixel():
    flat = torch.full((1, 4, 4), 0.5)
    assert pointing_game(flat, box(0, 0, 1, 1)).tolist() == [True]
    assert pointing_game(flat, box(1, 0, 4, 4)).tolist() == [False]


def test_energy_pointing_game_known_fractions():
    maps = torch.tensor([[[1.0, 0.5], [0.5, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.2, 0.2], [0.2, 0.2]]])
    boxes = torch.tensor([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 1]])
    # 1 / 2; a zero map scores 0; top row of a flat map: 0.4 / 0.8
    np.testing.assert_allclose(energy_pointing_game(maps, boxes).numpy(), [0.5, 0.0, 0.5], atol=1e-7)
    masks = torch.tensor([[[0, 1], [1, 0]]] * 3)
    np.testing.assert_allclose(energy_pointing_game(maps, masks).numpy(), [0.5, 0.0, 0.5], atol=1e-7)


def test_grid_pointing_game_quadrants():
    assert quadrant_boxes([0, 1, 2, 3], 4, 6).tolist() == [
        [0, 0, 3, 2],
        [3, 0, 6, 2],
        [0, 2, 3, 4],
        [3, 2, 6, 4],
    ]
    maps = torch.cat([peak_map(0, 3), peak_map(3, 0), peak_map(2, 2), peak_map(1, 1)])
    # maxima fall in quadrants 1, 2, 3, 0
    result = grid_pointing_game(maps, torch.tensor([1, 2, 3, 3]))
    assert result.hit.tolist() == [True, True, True, False]
    # energy: peak 1.0 plus three 0.1 in the quadrant, over 1.0 + 15 * 0.1 = 2.5
    np.testing.assert_allclose(result.energy.numpy(), [1.3 / 2.5] * 3 + [0.4 / 2.5], atol=1e-6)
    flat = torch.full((2, 4, 4), 0.3)
    assert grid_pointing_game(flat, 0).hit.tolist() == [True, True]
    np.testing.assert_allclose(grid_pointing_game(flat, 2).energy.numpy(), [0.25, 0.25], atol=1e-7)


def test_iou_with_box_known_value():
    m = torch.zeros(1, 4, 4)
    m[0, 0, 0:3] = 0.9  # three pixels above 0.5
    m[0, 1, 0] = 0.5  # equal to the threshold: not foreground
    # box covers the 2x2 top-left block: intersection 2, union 3 + 4 - 2 = 5
    assert iou_with_box(m, box(0, 0, 2, 2)).item() == pytest.approx(2 / 5)
    assert iou_with_box(m, box(0, 0, 2, 2), threshold=0.4).item() == pytest.approx(3 / 5)


def test_localisation_input_errors():
    m = peak_map(0, 0)
    with pytest.raises(ValueError, match="x0 < x1"):
        pointing_game(m, box(2, 0, 2, 4))
    with pytest.raises(ValueError, match="covers no pixel"):
        pointing_game(m, box(5, 5, 8, 8))
    with pytest.raises(ValueError, match="covers no pixel"):
        energy_pointing_game(m, torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="boxes"):
        pointing_game(m, torch.tensor([[0, 0, 1]]))
    with pytest.raises(ValueError, match="masks must have shape"):
        pointing_game(m, torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match="only 0 and 1"):
        pointing_game(m, torch.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(m, box(0, 0, 1, 1), tolerance=-1)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        pointing_game(m * 3, box(0, 0, 1, 1))
    with pytest.raises(ValueError, match="even"):
        grid_pointing_game(torch.zeros(1, 3, 4), 0)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        grid_pointing_game(m, 4)
    with pytest.raises(ValueError, match="one cell per image"):
        grid_pointing_game(m, [0, 1])
    with pytest.raises(TypeError, match="integer"):
        grid_pointing_game(m, torch.tensor([0.0]))
