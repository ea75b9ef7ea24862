"""The liftcam chapter's tables and figure data, as plain functions of its units' results.

The per-unit tables (one row per photo, per grid, per timing round) are what the claims are decided on; the
summaries are their means, for reading.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from camrepro.experiments.chapter import Results
from camrepro.experiments.kit import grids, timing
from camrepro.experiments.liftcam.params import LIFT, MODEL_NAMES, PAPER_NAMES

FAITHFULNESS = ("AD", "AI", "AG", "insertion", "deletion")
GRID = ("hit", "energy")
CONFIG = ["model", "layer_kind"]


def predictions(results: Results) -> pd.DataFrame:
    """What each network predicts on each photo (the targets every method explains)."""
    return results.table("predictions", "maps-")


def tail(results: Results) -> pd.DataFrame:
    """The operations of each tail after the explained layer and the DeepLIFT rule each gets."""
    return results.table("tail", "shap-")


# ------------------------------------------------------------------------------------------ SHAP agreement
def shap_quality(results: Results) -> pd.DataFrame:
    """Per photo: the SHAP estimate's noise (mean standard error, the normalised error it alone gives a
    perfect estimator, the rank correlation of its two independent halves) and LIFT-CAM's completeness."""
    return results.table("shap", "shap-")


def shap_quality_summary(results: Results) -> pd.DataFrame:
    """Per model and layer: photos, channels, permutations, the SHAP noise and LIFT-CAM's completeness."""
    table = shap_quality(results)
    return table.groupby(CONFIG + ["layer"], sort=False).agg(
        photos=("image", "size"), channels=("channels", "first"), permutations=("permutations", "first"),
        tail_is_linear=("tail_is_linear", "first"), mean_stderr=("mean_stderr", "mean"),
        relative_error_floor=("relative_error_floor", "mean"),
        split_half_spearman=("split_half_spearman", "mean"),
        worst_split_half_spearman=("split_half_spearman", "min"),
        lift_completeness_error=("lift_completeness_error", "max")).reset_index()


def agreement(results: Results) -> pd.DataFrame:
    """Per photo and method: Spearman ρ, normalised error and cosine of the coefficients with SHAP."""
    return results.table("agreement", "shap-")


def agreement_summary(results: Results) -> pd.DataFrame:
    """Per model, layer and method: photos and the mean agreement with SHAP."""
    table = agreement(results)
    return table.groupby(CONFIG + ["method"], sort=False).agg(
        photos=("image", "size"), spearman=("spearman", "mean"),
        normalised_error=("normalised_error", "mean"), cosine=("cosine", "mean")).reset_index()


def coefficients(results: Results, model: str, kind: str, photo: int = 0) -> pd.DataFrame:
    """One photo's channel coefficients of every method beside its SHAP values (± standard error), channels
    sorted by SHAP value; the figure's data."""
    arrays = results[f"shap-{model}-{kind}"].arrays["coefficients"]
    frame = pd.DataFrame({"shap": arrays["shap"][photo], "shap_stderr": arrays["shap_stderr"][photo]})
    for name in PAPER_NAMES:
        key = name.replace("+", "p")
        if key in arrays and arrays[key].shape[0] > photo:
            frame[name] = arrays[key][photo]
    frame.index.name = "channel"
    return frame.sort_values("shap", ascending=False).reset_index()


# ------------------------------------------------------------------------------------------- faithfulness
def faithfulness(results: Results) -> pd.DataFrame:
    """Per photo and method: p, o, AD, AI, AG (%), insertion and deletion AUC, all-zero flag."""
    return results.table("faithfulness", "maps-")


def grid_maps(results: Results) -> pd.DataFrame:
    """Per grid map (grid × quadrant) and method: pointing hit, energy share, all-zero flag."""
    return results.table("grid", "maps-")


def grid_units(results: Results) -> pd.DataFrame:
    """Per grid and method: hit and energy averaged over the grid's four quadrants (the claims' units)."""
    table = grid_maps(results)
    if table.empty:
        return pd.DataFrame(columns=[*CONFIG, "method", "grid", *GRID])
    table = table.assign(hit=table.hit.astype(float), energy=table.energy.astype(float))
    return grids.per_grid(table, by=[*CONFIG, "method"])


def faithfulness_summary(results: Results) -> pd.DataFrame:
    """Per model, layer and method: photos, all-zero maps, mean AD / AI / AG (%), insertion / deletion AUC,
    and grids, all-zero grid maps, grid pointing hit rate and energy share."""
    faith = faithfulness(results)
    out = faith.groupby(CONFIG + ["method"], sort=False).agg(
        photos=("image", "size"), all_zero=("all_zero", "sum"),
        **{m: (m, "mean") for m in FAITHFULNESS}).reset_index()
    maps_ = grid_maps(results)
    if maps_.empty:
        return out
    per = maps_.assign(hit=maps_.hit.astype(float), energy=maps_.energy.astype(float)).groupby(
        CONFIG + ["method"], sort=False).agg(grids=("grid", "nunique"), grid_all_zero=("all_zero", "sum"),
                                             grid_hit=("hit", "mean"), grid_energy=("energy", "mean"))
    out = out.merge(per.reset_index(), on=CONFIG + ["method"], how="left")
    out["grids"] = out.grids.fillna(0).astype(int)
    return out


# --------------------------------------------------------------------------------------------------- speed
def timing_rounds(results: Results) -> pd.DataFrame:
    """Every timed call: model, layer kind, set (fast / slow), round, call, seconds, machine load."""
    return results.table("timing", "timing-")


def shap_timing(results: Results) -> pd.DataFrame:
    """Per SHAP photo: the seconds of a forward pass, LIFT-CAM and the SHAP sampling on it, interleaved."""
    return results.table("shap_timing", "shap-")


def timing_summary(results: Results) -> pd.DataFrame:
    """Per model, layer and call: median seconds per image at batch 1, and its median ratio (with the 25-75 %
    spread over rounds) to a forward pass (fast rounds) and to LIFT-CAM (all rounds)."""
    rows = []
    sources = [(timing_rounds(results), ["set"]), (shap_timing(results).assign(set="shap"), ["set"])]
    for table, extra in sources:
        for key, group in table.groupby(CONFIG + extra, sort=False):
            calls = list(dict.fromkeys(group.call))
            for call in calls:
                own = group[group.call == call]
                row = dict(zip(CONFIG + extra, key)) | {"call": call, "rounds": len(own),
                                                        "median_s": float(own.seconds.median()),
                                                        "load": float(group.load.mean())}
                for reference in ("forward", LIFT):
                    if reference in calls and call != reference:
                        summary = timing.ratio_summary(group, call, reference)
                        label = "forward" if reference == "forward" else "lift"
                        row |= {f"vs_{label}": summary["median"], f"vs_{label}_q25": summary["q25"],
                                f"vs_{label}_q75": summary["q75"],
                                f"vs_{label}_unstable": summary["unstable"]}
                rows.append(row)
    return pd.DataFrame(rows)


def cost(results: Results) -> pd.DataFrame:
    """Per model, layer and method: network passes and FLOPs per image in forward-pass equivalents (the cheap
    methods; the sampling methods by their formula)."""
    return results.table("cost", "timing-")


# ------------------------------------------------------------------------------------------------ figures
def example_maps(results: Results, model: str, kind: str) -> dict[str, np.ndarray]:
    """The first photos and each method's maps on them (float32), for the figure of examples."""
    arrays = results[f"maps-{model}-{kind}"].arrays["examples"]
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def label(model: str, kind: str | None = None, method: str | None = None) -> str:
    """``MobileNetV2 last`` / ``LIFT-CAM``: the names the tables and claims show."""
    parts = [MODEL_NAMES.get(model, model)] + ([kind] if kind else [])
    return " ".join(parts) if method is None else f"{' '.join(parts)}: {PAPER_NAMES.get(method, method)}"

