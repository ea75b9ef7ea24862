"""The benchmark chapter's tables and figure data, built from its units' results (no map is computed here).

Means of the per-photo columns are exactly the metrics over the photos (see
:mod:`camrepro.experiments.kit.metric_tables`); every summary carries the number of photos (or grids, or
timing rounds) behind it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from camrepro import cache, evidence
from camrepro.experiments.chapter import Results
from camrepro.experiments.kit import grids as kit_grids
from camrepro.experiments.kit import timing as kit_timing
from camrepro.reference import published

# The model-randomisation sanity check, stated before the data: a map that explains the model must change
# when the model's weights are replaced by random ones. Adebayo et al. (2018) read a rank correlation near 1
# as a failed check; we call a method's maps model-dependent where the 95 % interval of the mean per-photo
# Spearman correlation (trained vs randomly initialised network) lies below 0.5.
RANDOMISATION_THRESHOLD = 0.5
RANDOMISATION_RULE = evidence.Rule(
    RANDOMISATION_THRESHOLD, "below",
    text="95 % interval of the mean per-photo rank correlation (trained vs random network) below 0.5")

PER_MODEL_METHOD = ["model", "method"]


def predictions(results: Results) -> pd.DataFrame:
    """One row per (model, photo): the predicted class (the target of every map) and its probability."""
    return results.table("predictions", prefix="maps-")


def faithfulness(results: Results) -> pd.DataFrame:
    """One row per (model, method, photo): p, o, AD, AI, AG and whether the map was all zero."""
    return results.table("faithfulness", prefix="maps-")


def faithfulness_summary(results: Results) -> pd.DataFrame:
    """Per (model, method): photos, AD ↓, AI ↑, AG ↑ (%) and the count of all-zero maps."""
    rows = faithfulness(results)
    rows = rows.assign(all_zero=rows.all_zero.astype(str).str.lower().isin(["true", "1"]))
    return rows.groupby(PER_MODEL_METHOD, sort=False).agg(
        photos=("image", "size"), AD=("AD", "mean"), AI=("AI", "mean"), AG=("AG", "mean"),
        all_zero_maps=("all_zero", "sum")).reset_index()


def insertion_deletion_summary(results: Results) -> pd.DataFrame:
    """Per (model, method): photos, insertion AUC ↑ and deletion AUC ↓ (%)."""
    rows = results.table("insertion_deletion", prefix="maps-")
    summary = rows.groupby(PER_MODEL_METHOD, sort=False).agg(
        photos=("image", "size"), insertion=("insertion", "mean"),
        deletion=("deletion", "mean")).reset_index()
    summary[["insertion", "deletion"]] *= 100
    return summary


def curves(results: Results) -> dict[str, dict[str, np.ndarray]]:
    """model → {"<method>|<mode>": the mean insertion or deletion curve over the scored photos}."""
    return {unit.removeprefix("maps-"): dict(result.arrays.get("curves", {}))
            for unit, result in results.items() if unit.startswith("maps-")}


def grid_summary(results: Results) -> pd.DataFrame:
    """Per (model, method): grids, hit rate and energy in the target's quadrant (%), per grid first."""
    rows = results.table("grid", prefix="grid-")
    if rows.empty:
        return pd.DataFrame(columns=[*PER_MODEL_METHOD, "grids", "hit %", "energy %"])
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(rows.model, rows.method)))}
    per_grid = kit_grids.per_grid(rows, by=PER_MODEL_METHOD)
    per_grid = per_grid.iloc[sorted(range(len(per_grid)),
                                    key=lambda i: order[(per_grid.model.iat[i], per_grid.method.iat[i])])]
    summary = per_grid.groupby(PER_MODEL_METHOD, sort=False).agg(
        grids=("grid", "size"), hit=("hit", "mean"), energy=("energy", "mean")).reset_index()
    summary[["hit", "energy"]] *= 100
    return summary.rename(columns={"hit": "hit %", "energy": "energy %"})


def randomisation(results: Results) -> pd.DataFrame:
    """One row per (model, method, photo): rank correlation of the trained and the random network's maps."""
    return results.table("randomisation", prefix="randomisation-")


def randomisation_checks(results: Results) -> list[evidence.Condition]:
    """One condition per (model, method): the per-photo rank correlations against :data:`RANDOMISATION_RULE`,
    on the photos where both maps have a ranking (an all-zero map has none)."""
    rows = randomisation(results).dropna(subset=["rank_correlation"])
    return [evidence.condition(f"{model} {method}", g.image, g.rank_correlation, rule=RANDOMISATION_RULE,
                               measure="Spearman ρ, trained vs random network", a_label="rank_correlation")
            for (model, method), g in rows.groupby(PER_MODEL_METHOD, sort=False)]


def randomisation_summary(results: Results) -> pd.DataFrame:
    """Per (model, method): photos, all-zero maps (trained, random), the mean rank correlation with its 95 %
    bootstrap interval over the photos that have one, and the check's outcome against 0.5."""
    rows = randomisation(results)
    if rows.empty:
        return pd.DataFrame(columns=[*PER_MODEL_METHOD, "photos", "all_zero_trained", "all_zero_random", "n",
                                     "mean ρ", "low", "high", "below 0.5"])
    flags = {c: rows[c].astype(str).str.lower().isin(["true", "1"])
             for c in ("all_zero_trained", "all_zero_random")}
    counts = rows.assign(**flags).groupby(PER_MODEL_METHOD, sort=False).agg(
        photos=("image", "size"), all_zero_trained=("all_zero_trained", "sum"),
        all_zero_random=("all_zero_random", "sum")).reset_index()
    checks = {c.label: c for c in randomisation_checks(results)}
    decided = []
    for row in counts.itertuples():
        check = checks.get(f"{row.model} {row.method}")
        iv = check.interval if check else None
        decided.append({"n": iv.n if iv else 0, "mean ρ": iv.estimate if iv else np.nan,
                        "low": iv.low if iv else np.nan, "high": iv.high if iv else np.nan,
                        "below 0.5": check.outcome if check else evidence.UNDECIDED})
    return pd.concat([counts, pd.DataFrame(decided)], axis=1)


def timing_summary(results: Results) -> pd.DataFrame:
    """Per (model, method, batch): median seconds per image of the method and of the forward pass timed next
    to it, the per-round ratio's median and 25-75 % spread, the rounds, the flag for a spread wider than the
    ratio, the mean load during the timing and the method's pass count."""
    times = results.table("timing", prefix="timing-")
    columns = [*PER_MODEL_METHOD, "batch", "s_per_image", "forward_s_per_image", "ratio", "ratio_q25",
               "ratio_q75", "rounds", "unstable", "load", "passes"]
    if times.empty:
        return pd.DataFrame(columns=columns)
    costs = results.table("costs", prefix="timing-").set_index(PER_MODEL_METHOD)["passes"]
    rows = []
    for (model, method, batch), g in times.groupby([*PER_MODEL_METHOD, "batch"], sort=False):
        ratio = kit_timing.ratio_summary(g, "method", "forward")
        medians = g.groupby("call").seconds.median()
        rows.append({"model": model, "method": method, "batch": int(batch), "s_per_image": medians["method"],
                     "forward_s_per_image": medians["forward"], "ratio": ratio["median"],
                     "ratio_q25": ratio["q25"], "ratio_q75": ratio["q75"], "rounds": ratio["rounds"],
                     "unstable": ratio["unstable"], "load": float(g.load.mean()),
                     "passes": costs.get((model, method), "")})
    return pd.DataFrame(rows, columns=columns)


def examples(results: Results, model: str) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """The example photos [N, 3, H, W], each method's maps of them (a method run on fewer photos has fewer)
    and the photos' predicted class names."""
    bundle = results[f"maps-{model}"].arrays["examples"]
    images = bundle["images"].astype(np.float32)
    maps = {k: v.astype(np.float32) for k, v in bundle.items() if k != "images"}
    names = results[f"maps-{model}"]["predictions"].class_name.tolist()[:images.shape[0]]
    return images, maps, names


def published_table1() -> pd.DataFrame:
    """The Opti-CAM paper's Table 1 (ImageNet validation, ResNet-50 and VGG-16, ground-truth class): AD, AG,
    AI in % — another protocol and other networks, quoted for orientation."""
    ref = published("opticam_table1_cnn")
    return ref.pivot(index="method", columns="model", values=["AD", "AG", "AI"]).round(1)


# ------------------------------------------------------------------------------------------------ GPU check

GPU_CHECK_COLUMNS = ["section", "figure", "value", "unit", "n", "detail", "gpu", "date", "commit", "torch",
                     "dry_run"]


def gpu_check_path() -> Path:
    """Where ``python -m camrepro.gpu_check`` writes its figures: ``<results>/gpu-check/gpu-check.csv``."""
    return cache.results_root() / "gpu-check" / "gpu-check.csv"


def gpu_check(path: Path | None = None) -> pd.DataFrame | None:
    """The figures of the last GPU check run in this tree (one row per figure, labelled with the GPU, the
    date and the commit), or None when it never ran here. A dry run (CPU, tiny scale) is marked so."""
    path = path or gpu_check_path()
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    missing = sorted(set(GPU_CHECK_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"{path} is not a GPU check table: it lacks the column(s) {missing}")
    return table[GPU_CHECK_COLUMNS]
