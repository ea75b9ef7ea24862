"""Rank correlation, top-k IoU and coefficient agreement: hand-computed values and scipy as a reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import camrepro  # noqa: F401
from camrepro.metrics import (
    coefficient_agreement,
    kendall_tau,
    map_rank_correlation,
    rankdata,
    spearman,
    topk_iou,
)


def test_rankdata_averages_ties():
    assert rankdata(torch.tensor([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert rankdata(np.array([[3, 3, 3], [1, 2, 1]])).tolist() == [[2.0, 2.0, 2.0], [1.5, 3.0, 1.5]]


def test_spearman_known_values():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a**3).item() == pytest.approx(1.0)
    assert spearman(a, -a).item() == pytest.approx(-1.0)
    assert math.isnan(spearman(a, torch.ones(4)).item())
    # ranks (1, 2, 3) vs (1, 3, 2): 1 - 6 * 2 / (3 * 8) = 0.5
    assert spearman(np.array([1, 2, 3]), np.array([10, 30, 20])).item() == pytest.approx(0.5)


def test_spearman_matches_scipy_row_by_row_with_ties():
    generator = np.random.default_rng(0)
    a = generator.integers(0, 5, size=(6, 40)).astype(float)  # many ties
    b = a + generator.integers(0, 4, size=(6, 40))
    ours = spearman(a, b).numpy()
    reference = [stats.spearmanr(row_a, row_b).statistic for row_a, row_b in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours, reference, atol=1e-12)
    assert ours.shape == (6,)


def test_kendall_tau_known_value_and_scipy():
    # pairs of (1,2,3) vs (1,3,2): 2 concordant, 1 discordant -> 1/3
    assert kendall_tau(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 2.0])).item() == pytest.approx(
        1 / 3
    )
    generator = np.random.default_rng(1)
    a, b = generator.integers(0, 4, size=(3, 20)), generator.integers(0, 4, size=(3, 20))
    reference = [stats.kendalltau(row_a, row_b).statistic for row_a, row_b in zip(a, b, strict=True)]
    np.testing.assert_allclose(kendall_tau(a, b).numpy(), reference, atol=1e-12)
    assert math.isnan(kendall_tau(np.ones(5), np.arange(5.0)).item())


def test_map_rank_correlation_per_image():
    maps_a = torch.tensor([[[0.1, 0.2], [0.3, 0.4]], [[0.1, 0.2], [0.3, 0.4]]])
    maps_b = torch.tensor([[[0.0, 0.5], [0.6, 1.0]], [[0.4, 0.3], [0.2, 0.1]]])
    np.testing.assert_allclose(map_rank_correlation(maps_a, maps_b).numpy(), [1.0, -1.0])


def test_topk_iou_known_values():
    a = torch.tensor([[[0.9, 0.8, 0.1, 0.0, 0.0]]])
    b = torch.tensor([[[0.0, 0.8, 0.9, 0.0, 0.0]]])
    # k = round(0.4 * 5) = 2: {0, 1} vs {2, 1} -> 1 / 3
    assert topk_iou(a, b, k_fraction=0.4).item() == pytest.approx(1 / 3)
    # k = 1: {0} vs {2} -> 0;  k = 5: everything -> 1
    assert topk_iou(a, b, k_fraction=0.2).item() == 0.0
    assert topk_iou(a, b, k_fraction=1.0).item() == 1.0
    # flat maps: ties broken in row-major order, so two flat maps agree exactly
    flat = torch.full((1, 1, 5), 0.5)
    assert topk_iou(flat, flat * 0.5, k_fraction=0.4).item() == 1.0
    # k never drops to 0
    assert topk_iou(a, a, k_fraction=0.01).item() == 1.0


def test_coefficient_agreement_known_values():
    estimate = torch.tensor([[1.0, 2.0, 2.0], [2.0, 4.0, 6.0], [1.0, 1.0, 1.0]])
    reference = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    out = coefficient_agreement(estimate, reference)
    # row 0: ranks (1, 2.5, 2.5) vs (1, 2, 3) -> sqrt(3)/2; error 1/sqrt(14); cosine 11 / (3 sqrt(14))
    # row 1: a scaled copy -> rank 1, error 1, cosine 1; row 2: zero reference -> NaN everywhere
    np.testing.assert_allclose(out["spearman"][:2].numpy(), [math.sqrt(3) / 2, 1.0])
    np.testing.assert_allclose(out["normalised_error"][:2].numpy(), [1 / math.sqrt(14), 1.0])
    np.testing.assert_allclose(out["cosine"][:2].numpy(), [11 / (3 * math.sqrt(14)), 1.0])
    assert all(math.isnan(out[key][2].item()) for key in ("spearman", "normalised_error", "cosine"))
    single = coefficient_agreement(np.array([1.0, -1.0]), np.array([-1.0, 1.0]))
    assert single["cosine"].item() == pytest.approx(-1.0)
    assert single["normalised_error"].item() == pytest.approx(2.0)
    assert single["spearman"].dim() == 0


def test_agreement_input_errors():
    with pytest.raises(ValueError, match="same shape"):
        spearman(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="at least 2"):
        spearman(torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match="NaN"):
        spearman(torch.tensor([1.0, float("nan")]), torch.ones(2))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        coefficient_agreement(torch.ones(2, 2, 2), torch.ones(2, 2, 2))
    with pytest.raises(TypeError, match=r"torch\.Tensor or numpy\.ndarray"):
        spearman([1, 2], [1, 2])
    with pytest.raises(ValueError, match="maps_b has shape"):
        map_rank_correlation(torch.rand(1, 2, 2), torch.rand(1, 2, 3))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        topk_iou(torch.rand(1, 2, 2) + 2, torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match="k_fraction"):
        topk_iou(torch.rand(1, 2, 2), torch.rand(1, 2, 2), k_fraction=0)
