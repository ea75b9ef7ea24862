"""Thresholding, IoU and mean pairwise IoU (LFI-CAM stability) on crafted masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import camrepro  # noqa: F401
from camrepro.metrics import Quantile, iou, mean_pairwise_iou, threshold_maps


def test_threshold_maps_is_strict():
    maps = torch.tensor([[[0.2, 0.5, 0.7, 1.0]]])
    assert threshold_maps(maps, 0.5).tolist() == [[[False, False, True, True]]]
    assert threshold_maps(maps, 0).tolist() == [[[True, True, True, True]]]
    assert threshold_maps(maps, 1.0).tolist() == [[[False, False, False, False]]]


def test_threshold_maps_mean_and_quantile_are_per_image():
    maps = torch.tensor([[[0.0, 0.1, 0.2, 0.9]], [[0.5, 0.6, 0.7, 0.8]]])
    # means 0.3 and 0.65
    assert threshold_maps(maps, "mean").tolist() == [
        [[False, False, False, True]],
        [[False, False, True, True]],
    ]
    # 0.5-quantile (linear interpolation): 0.15 and 0.65
    assert threshold_maps(maps, Quantile(0.5)).tolist() == [
        [[False, False, True, True]],
        [[False, False, True, True]],
    ]
    assert threshold_maps(maps, Quantile(1.0)).sum().item() == 0


def test_iou_known_values():
    a = torch.zeros(4, 2, 3, dtype=torch.bool)
    b = torch.zeros(4, 2, 3, dtype=torch.bool)
    a[0, 0, 0:2] = True  # 2 pixels
    b[0, 0, 1:3] = True  # 2 pixels, 1 shared: 1 / 3
    b[0, 1, 2] = True  # one more in b: 1 / 4
    a[1] = True  # b[1] empty: 0
    a[2, 1, 1] = b[2, 1, 1] = True  # identical: 1
    # image 3: both empty -> 1 by convention
    np.testing.assert_allclose(iou(a, b).numpy(), [0.25, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(iou(a.int().numpy(), b.int().numpy()).numpy(), [0.25, 0.0, 1.0, 1.0])


def test_mean_pairwise_iou_three_models():
    # one image, 1x4 maps; foreground (> 0.5): A = {0, 1}, B = {1, 2}, C = {0, 1, 2, 3}
    a = torch.tensor([[[0.9, 0.8, 0.1, 0.0]]])
    b = torch.tensor([[[0.1, 0.8, 0.9, 0.0]]])
    c = torch.tensor([[[0.6, 0.6, 0.6, 0.6]]])
    result = mean_pairwise_iou([a, b, c])
    # IoU(A,B) = 1/3, IoU(A,C) = 2/4, IoU(B,C) = 2/4
    expected = torch.tensor([[1, 1 / 3, 0.5], [1 / 3, 1, 0.5], [0.5, 0.5, 1]])
    np.testing.assert_allclose(result.matrix.numpy(), expected.numpy(), atol=1e-7)
    assert result.mean == pytest.approx((1 / 3 + 0.5 + 0.5) / 3)
    assert result.per_image.tolist() == pytest.approx([(1 / 3 + 0.5 + 0.5) / 3])


def test_mean_pairwise_iou_averages_over_images():
    first = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    second = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    result = mean_pairwise_iou((first, second), threshold=0.5)
    assert result.per_image.tolist() == pytest.approx([1.0, 0.5])
    assert result.mean == pytest.approx(0.75)


def test_stability_input_errors():
    m = torch.rand(2, 3, 3)
    with pytest.raises(ValueError, match="at least 2 models"):
        mean_pairwise_iou([m])
    with pytest.raises(TypeError, match="list"):
        mean_pairwise_iou(m)
    with pytest.raises(ValueError, match="same images"):
        mean_pairwise_iou([m, torch.rand(3, 3, 3)])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        threshold_maps(m, 1.5)
    with pytest.raises(ValueError, match="unknown threshold"):
        threshold_maps(m, "median")
    with pytest.raises(TypeError, match="threshold"):
        threshold_maps(m, None)
    with pytest.raises(ValueError, match="Quantile"):
        Quantile(1.5)
    with pytest.raises(ValueError, match="same shape"):
        iou(torch.ones(1, 2, 2), torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="only 0 and 1"):
        iou(torch.full((1, 2, 2), 0.5), torch.ones(1, 2, 2))
