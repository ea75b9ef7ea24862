"""Agreement between two explanations: rank correlation and top-k overlap of maps, and the agreement of CAM
channel coefficients with reference (sampled SHAP) values.

Used for A-FMI's claim of insensitivity to the reference image (maps of one image under two references
should rank pixels alike) and for LIFT-CAM's claim that its coefficients approximate the SHAP values of the
activation maps (Jung & Oh, ICCV 2021, Sec. 3).

Everything is computed in float64 on the CPU (ranks of 50 000 pixels and their sums need it) and returned as
float64 CPU tensors. A correlation or cosine that is undefined (a constant row, a zero vector) is NaN, never a
number that could be mistaken for a score.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from camrepro.metrics._validation import as_float_tensor, check_maps


def _rows(value: object, name: str) -> tuple[torch.Tensor, bool]:
    """``value`` as a finite float64 CPU matrix [B, N] and whether it was a single vector."""
    tensor = as_float_tensor(value, name).detach().to("cpu", torch.float64)
    single = tensor.dim() == 1
    if single:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 2:
        raise ValueError(
            f"{name} must be a vector [N] or a batch of rows [B, N], got shape {tuple(tensor.shape)}"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor, single


def _paired_rows(a: object, b: object, minimum: int = 2) -> tuple[torch.Tensor, torch.Tensor, bool]:
    a, single = _rows(a, "a")
    b, _ = _rows(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] < minimum:
        raise ValueError(f"each row needs at least {minimum} values, got {a.shape[1]}")
    return a, b, single


def rankdata(values: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Ranks 1 … N of each row of [B, N] (or of a vector [N]), tied values getting the average of their ranks
    (scipy's ``method="average"``); float64 CPU tensor of the input's shape."""
    rows, single = _rows(values, "values")
    batch, length = rows.shape
    sorted_values, order = torch.sort(rows, dim=1, stable=True)
    starts = torch.ones_like(sorted_values, dtype=torch.bool)
    starts[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    # One id per run of equal values, unique over the whole batch, to average ordinal ranks within each run.
    group = torch.cumsum(starts.long(), dim=1) - 1 + torch.arange(batch).unsqueeze(1) * length
    ordinal = torch.arange(1, length + 1, dtype=torch.float64).expand(batch, length)
    sums = torch.zeros(batch * length, dtype=torch.float64).scatter_add_(
        0, group.flatten(), ordinal.flatten()
    )
    sizes = torch.zeros(batch * length, dtype=torch.float64).scatter_add_(
        0, group.flatten(), torch.ones(batch * length, dtype=torch.float64)
    )
    average = (sums / sizes.clamp(min=1))[group]
    ranks = torch.empty_like(average).scatter_(1, order, average)
    return ranks[0] if single else ranks


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = torch.sqrt(a.square().sum(dim=1) * b.square().sum(dim=1))
    correlation = (a * b).sum(dim=1) / denominator.clamp(min=torch.finfo(torch.float64).tiny)
    return torch.where(denominator > 0, correlation.clamp(-1.0, 1.0), torch.full_like(correlation, math.nan))


def spearman(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Spearman rank correlation of a and b, row by row for [B, N] (a [B] tensor) or of two vectors [N] (a 0-d
    tensor): the Pearson correlation of average ranks. NaN where a row is constant, as in scipy."""
    a, b, single = _paired_rows(a, b)
    rho = _pearson_rows(rankdata(a), rankdata(b))
    return rho[0] if single else rho


def kendall_tau(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Kendall's τ-b (ties accounted for) of a and b, row by row, via ``scipy.stats.kendalltau``; NaN where a
    row is constant. Same shapes as :func:`spearman`."""
    a, b, single = _paired_rows(a, b)
    taus = []
    for row_a, row_b in zip(a.numpy(), b.numpy(), strict=True):
        if np.all(row_a == row_a[0]) or np.all(row_b == row_b[0]):
            taus.append(math.nan)
            continue
        taus.append(float(stats.kendalltau(row_a, row_b).statistic))
    result = torch.tensor(taus, dtype=torch.float64)
    return result[0] if single else result


def _paired_maps(maps_a: object, maps_b: object) -> tuple[torch.Tensor, torch.Tensor]:
    maps_a = check_maps(maps_a, "maps_a")
    maps_b = check_maps(maps_b, "maps_b", shape=maps_a.shape)
    rows_a = maps_a.flatten(1).detach().to("cpu", torch.float64)
    rows_b = maps_b.flatten(1).detach().to("cpu", torch.float64)
    return rows_a, rows_b


def map_rank_correlation(
    maps_a: torch.Tensor | np.ndarray, maps_b: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Spearman correlation [B] between the pixels of maps_a[i] and maps_b[i] (maps [B, H, W] in [0, 1])."""
    a, b = _paired_maps(maps_a, maps_b)
    return spearman(a, b)


def topk_iou(
    maps_a: torch.Tensor | np.ndarray, maps_b: torch.Tensor | np.ndarray, k_fraction: float = 0.1
) -> torch.Tensor:
    """IoU [B] of the sets of the k most salient pixels of maps_a[i] and of maps_b[i].

    k = max(1, round(k_fraction · H·W)). Ties at the cut are broken by a stable sort (earlier pixel in
    row-major order first), so both sets always have exactly k pixels and the IoU is |A∩B| / (2k − |A∩B|).
    """
    if (
        isinstance(k_fraction, bool)
        or not isinstance(k_fraction, (int, float, np.floating))
        or not 0 < k_fraction <= 1
    ):
        raise ValueError(f"k_fraction must be in (0, 1], got {k_fraction!r}")
    a, b = _paired_maps(maps_a, maps_b)
    batch, length = a.shape
    k = max(1, round(k_fraction * length))
    members = []
    for rows in (a, b):
        top = torch.sort(rows, dim=1, descending=True, stable=True).indices[:, :k]
        members.append(torch.zeros(batch, length, dtype=torch.bool).scatter_(1, top, True))
    shared = (members[0] & members[1]).sum(dim=1).double()
    return shared / (2 * k - shared)


def coefficient_agreement(
    estimate: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray
) -> dict[str, torch.Tensor]:
    """Agreement of channel coefficients estimate [B, K] with reference values [B, K] (e.g. LIFT-CAM's φ_k
    against Monte-Carlo SHAP values of the activation maps), one value per image:

    - ``"spearman"``: rank correlation of the K coefficients (NaN for a constant row);
    - ``"normalised_error"``: ‖estimate − reference‖₂ / ‖reference‖₂ (NaN when the reference is all zero);
    - ``"cosine"``: cosine similarity (NaN when either vector is all zero).

    Vectors [K] give 0-d tensors.
    """
    estimate, reference, single = _paired_rows(estimate, reference)
    reference_norm = reference.norm(dim=1)
    estimate_norm = estimate.norm(dim=1)
    nan = torch.full_like(reference_norm, math.nan)
    tiny = torch.finfo(torch.float64).tiny
    error = torch.where(
        reference_norm > 0, (estimate - reference).norm(dim=1) / reference_norm.clamp(min=tiny), nan
    )
    product = reference_norm * estimate_norm
    cosine = torch.where(
        product > 0, ((estimate * reference).sum(dim=1) / product.clamp(min=tiny)).clamp(-1, 1), nan
    )
    result = {
        "spearman": _pearson_rows(rankdata(estimate), rankdata(reference)),
        "normalised_error": error,
        "cosine": cosine,
    }
    return {key: value[0] for key, value in result.items()} if single else result
