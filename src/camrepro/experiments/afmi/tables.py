"""The A-FMI chapter's tables, from its units' results: the per-photo (per-grid) tables the claims are
decided on, and the summaries and figure data the notebook shows."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from camrepro import metrics
from camrepro.experiments.kit.grids import per_grid

METHOD_NAMES = {"a-fmi": "A-FMI", "integrated-gradients": "Integrated gradients", "deeplift": "DeepLIFT",
                "lift-cam": "LIFT-CAM", "grad-cam": "Grad-CAM"}
AGREEMENT = ("rank_correlation", "topk_iou", "rank_correlation_pooled", "topk_iou_pooled")


def _table(results: Mapping[str, object], prefix: str, name: str) -> pd.DataFrame:
    frames = [r.tables[name] for unit, r in results.items()
              if unit.startswith(f"{prefix}-") and name in r.tables and not r.tables[name].empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def insensitivity_per_photo(results: Mapping[str, object]) -> pd.DataFrame:
    """Per (model, method, layer, image): the mean over every pair of references of the rank correlation
    between the image's two maps (a pair with a constant map counts as 0: it ranks nothing) and of their
    top-k IoU, at full resolution and pooled to the layer's grid; ``pairs`` and ``constant_pairs``."""
    pairs = _table(results, "insensitivity", "pairs")
    pairs = pairs.assign(rank_correlation=pairs["spearman"].fillna(0.0),
                         rank_correlation_pooled=pairs["spearman_pooled"].fillna(0.0),
                         constant=pairs["constant"].astype(int))
    grouped = pairs.groupby(["model", "method", "layer", "image"], sort=False)
    out = grouped[["rank_correlation", "topk_iou", "rank_correlation_pooled", "topk_iou_pooled"]].mean()
    out["pairs"] = grouped.size()
    out["constant_pairs"] = grouped["constant"].sum()
    return out.reset_index()


def insensitivity_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """Per (model, method, layer): the mean and standard deviation over photos of each agreement measure of
    :func:`insensitivity_per_photo`, the photos, map pairs, pairs with a constant map and all-zero maps."""
    photos = insensitivity_per_photo(results)
    grouped = photos.groupby(["model", "method", "layer"], sort=False)
    out = grouped[list(AGREEMENT)].mean()
    out["rank_correlation_sd"] = grouped["rank_correlation"].std(ddof=1)
    out["photos"] = grouped.size()
    out["pairs"] = grouped["pairs"].sum()
    out["constant_pairs"] = grouped["constant_pairs"].sum()
    counts = _table(results, "insensitivity", "maps")
    if not counts.empty:
        zeros = counts.groupby(["model", "method", "layer"], sort=False)["all_zero"].sum()
        out["all_zero_maps"] = zeros.reindex(out.index).fillna(0).astype(int)
    return out.reset_index()


def pair_matrix(results: Mapping[str, object], model: str, method: str, layer: str,
                column: str = "spearman") -> pd.DataFrame:
    """Mean agreement of one method's maps (at one layer choice, or ``input``) for every pair of references,
    over photos (symmetric, 1 on the diagonal; a constant map counts as 0)."""
    pairs = _table(results, "insensitivity", "pairs")
    pairs = pairs[(pairs.model == model) & (pairs.method == method) & (pairs.layer == layer)]
    values = (pairs.assign(value=pairs[column].fillna(0.0))
              .groupby(["reference_a", "reference_b"])["value"].mean())
    names = list(dict.fromkeys([*pairs.reference_a, *pairs.reference_b]))
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for (a, b), v in values.items():
        matrix.loc[a, b] = matrix.loc[b, a] = v
    return matrix


def completeness_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """A-FMI per (model, layer, reference), means over photos: F_c(x), F_c(x′), their difference, Σ_k φ_k,
    the relative completeness gap and ‖A(x′)‖ / ‖A(x)‖."""
    table = _table(results, "insensitivity", "completeness")
    table = table.assign(difference=table.score - table.reference_score)
    columns = ["score", "reference_score", "difference", "sum_phi", "relative_gap", "reference_ratio"]
    return table.groupby(["model", "layer", "reference"], sort=False)[columns].mean().reset_index()


def faithfulness_per_photo(results: Mapping[str, object]) -> pd.DataFrame:
    """One row per (model, method, layer, image): p, o, AD, AI, AG (%), insertion and deletion AUC,
    all_zero."""
    return _table(results, "faithfulness", "faithfulness")


def faithfulness_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """Per (model, method, layer): AD, AI, AG (%) over the photos (the metrics of :mod:`camrepro.metrics`),
    insertion and deletion AUC (%), photos and all-zero maps."""
    rows = []
    for (model, method, layer), f in faithfulness_per_photo(results).groupby(["model", "method", "layer"],
                                                                             sort=False):
        p, o = f.p.to_numpy(), f.o.to_numpy()
        rows.append({"model": model, "method": method, "layer": layer, "AD": metrics.average_drop(p, o),
                     "AI": metrics.average_increase(p, o), "AG": metrics.average_gain(p, o),
                     "insertion": 100 * f.insertion.mean(), "deletion": 100 * f.deletion.mean(),
                     "photos": len(f), "all_zero_maps": int(f.all_zero.sum())})
    return pd.DataFrame(rows)


def grid_per_grid(results: Mapping[str, object]) -> pd.DataFrame:
    """Per (model, method, layer, grid): hit and energy averaged over the grid's four quadrant maps."""
    return per_grid(_table(results, "grids", "grid"), ["model", "method", "layer"])


def grid_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """Per (model, method, layer): grid pointing hit rate and energy in the target quadrant (%), grids and
    all-zero grid maps."""
    rows = _table(results, "grids", "grid")
    grids = grid_per_grid(results)
    grouped = grids.groupby(["model", "method", "layer"], sort=False)
    out = pd.DataFrame({"hit": 100 * grouped["hit"].mean(), "energy": 100 * grouped["energy"].mean(),
                        "grids": grouped.size()})
    zeros = rows.groupby(["model", "method", "layer"], sort=False)["all_zero"].sum()
    out["all_zero_maps"] = zeros.astype(int)
    return out.reset_index()


def saturation_per_photo(results: Mapping[str, object]) -> pd.DataFrame:
    """One row per (model, temperature, method, image), the rank correlation with the logit map NaN (a
    constant map) counted as 0."""
    table = _table(results, "saturation", "saturation")
    return table.assign(rank_correlation_with_logit_map=table["rank_correlation_with_logit_map"].fillna(0.0))


def saturation_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """Per (model, temperature, method), means over photos: probability, share exactly 1 in float32, the
    change of p from the reference, Grad-CAM's gradient size, A-FMI's Σ_k φ_k and completeness gap, the rank
    correlation with the method's own logit map, deletion AUC; photos and all-zero maps."""
    table = saturation_per_photo(results)
    grouped = table.groupby(["model", "temperature", "method"], sort=False)
    columns = ["probability", "probability_is_one", "probability_change", "gradient", "sum_phi",
               "relative_gap", "rank_correlation_with_logit_map", "deletion_auc"]
    out = grouped[columns].mean()
    out["photos"] = grouped.size()
    out["all_zero_maps"] = grouped["all_zero"].sum().astype(int)
    return out.reset_index()


def predictions(results: Mapping[str, object]) -> pd.DataFrame:
    """The predicted class of every photo, per model (the target every map explains)."""
    return _table(results, "faithfulness", "predictions")
