"""The opticam chapter's tables and figure data, built from its units' results (no computation of maps here).

Per-photo tables are the evidence of the claims; the summaries are their means over photos (the paper's
AD / AG / AI are exactly these means), beside the paper's published figures where it has them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from camrepro.experiments.kit.metric_tables import paired
from camrepro.experiments.opticam.params import MODEL_NAMES, OPTI, PAPER_NAMES
from camrepro.reference import published

METRICS = ["AD", "AG", "AI"]


def models_of(results: Mapping[str, object]) -> list[str]:
    return [k.removeprefix("faithfulness-") for k in results if k.startswith("faithfulness-")]


def _concat(results: Mapping[str, object], table: str) -> pd.DataFrame:
    return pd.concat([results[f"faithfulness-{m}"][table] for m in models_of(results)], ignore_index=True)


def scores(results: Mapping[str, object], space: str = "pixel") -> pd.DataFrame:
    """Per photo: model, method, image, p, o, AD, AI, AG (masking in ``space``)."""
    table = _concat(results, "scores")
    return table[table.space == space].reset_index(drop=True)


def _means(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return table.groupby(by, sort=False).agg(images=("image", "count"), **{m: (m, "mean") for m in METRICS}
                                             ).reset_index()


def faithfulness_summary(results: Mapping[str, object], space: str = "pixel") -> pd.DataFrame:
    """AD, AG, AI (%) per model and method over the photos each ran on, with the count of all-zero maps."""
    table = _means(scores(results, space), ["model", "method"])
    zeros = _concat(results, "all_zero").groupby(["model", "method"]).all_zero.sum().rename("all-zero maps")
    return table.merge(zeros.reset_index(), on=["model", "method"], how="left")


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """Model and method columns with the names the paper uses."""
    out = table.copy()
    if "model" in out:
        out["model"] = out.model.map(lambda m: MODEL_NAMES.get(m, m))
    if "method" in out:
        out["method"] = out.method.map(lambda m: PAPER_NAMES.get(m, m))
    return out


def opti_images(results: Mapping[str, object], model_name: str) -> list[str]:
    table = scores(results)
    return table[(table.model == model_name) & (table.method == OPTI)].image.tolist()


def comparison(results: Mapping[str, object]) -> pd.DataFrame:
    """Every method on Opti-CAM's photos: AD, AG, AI, insertion and deletion AUC (%), with their photo counts."""
    frames = []
    for m in models_of(results):
        keep = set(opti_images(results, m))
        s = scores(results)
        s = s[(s.model == m) & s.image.isin(keep)]
        table = _means(s, ["model", "method"])
        auc = results[f"faithfulness-{m}"]["insertion_deletion"]
        auc = auc[auc.image.isin(keep)].groupby("method").agg(
            insertion=("insertion", "mean"), deletion=("deletion", "mean"), auc_images=("image", "count"))
        auc[["insertion", "deletion"]] *= 100
        frames.append(table.merge(auc.reset_index(), on="method", how="left"))
    return pd.concat(frames, ignore_index=True)


def published_comparison() -> pd.DataFrame:
    """The paper's Table 1 (AD, AG, AI, seconds) joined with its Table 3 (insertion, deletion)."""
    return published("opticam_table1_cnn").merge(published("opticam_table3_insertion_deletion"),
                                                 on=["method", "model"], how="left")


def ablation_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """AD, AG, AI (%) of each objective × normalisation, beside the paper's Table 6 (VGG16, 100 iterations)."""
    s = results["ablation"]["scores"]
    ours = _means(s, ["objective", "normalization"]) if len(s) else pd.DataFrame(
        columns=["objective", "normalization", "images", *METRICS])
    paper = published("opticam_table6_ablation_vgg16").rename(columns={m: f"{m} published" for m in METRICS})
    paper["objective"] = paper.objective.str.lower()
    paper["normalization"] = paper.normalization.str.lower()
    return ours.merge(paper, on=["objective", "normalization"], how="left")


def iteration_curve(results: Mapping[str, object]) -> pd.DataFrame:
    """AD, AG, AI (%) of Opti-CAM's map after t iterations, per model (snapshots of the main runs)."""
    return _means(_concat(results, "iterations"), ["model", "iteration"])


def objective_trajectories(results: Mapping[str, object]) -> pd.DataFrame:
    """The masked target logit per iteration and photo (long form: model, image, iteration, objective)."""
    frames = []
    for m in models_of(results):
        arrays = results[f"faithfulness-{m}"].arrays["trajectories"]
        objective, names = arrays["objective"], arrays["images"]
        b, t = objective.shape
        frames.append(pd.DataFrame({"model": m, "image": np.repeat(names, t),
                                    "iteration": np.tile(np.arange(t), b),
                                    "objective": objective.ravel()}))
    return pd.concat(frames, ignore_index=True)


def protocol_scores(results: Mapping[str, object]) -> pd.DataFrame:
    """Per photo, both masking spaces: the main runs (Opti-CAM optimised in pixel space) and the protocol unit's
    Opti-CAM optimised in normalised space; ``optimised_in`` is empty for the baselines."""
    main = _concat(results, "scores")
    main = main.assign(optimised_in=np.where(main.method == OPTI, "pixel", ""))
    extra = results["protocol"]["scores"]
    return pd.concat([main, extra], ignore_index=True)[
        ["model", "method", "optimised_in", "space", *["image", "p", "o", *METRICS]]]


def protocol_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """AD, AG, AI (%) per model, method and Opti-CAM's optimisation space, masked in each space, on the photos
    that Opti-CAM was re-optimised on in normalised space (all of each method's photos if none)."""
    table = protocol_scores(results)
    table = table[table.method.isin(set(table[table.space == "normalized"].method))]   # scored both ways
    extra = results["protocol"]["scores"]
    if len(extra):
        keep = set(extra.image)
        table = table[table.image.isin(keep) & table.model.isin(set(extra.model))]
    return _means(table, ["model", "method", "optimised_in", "space"])


def timing_rows(results: Mapping[str, object]) -> pd.DataFrame:
    return results["timing"]["times"]


def timing_summary(results: Mapping[str, object]) -> pd.DataFrame:
    """Median seconds per photo of each timed call, and the per-round Opti-CAM / Score-CAM ratio."""
    times = timing_rows(results)
    if times.empty:
        return pd.DataFrame(columns=["model", "call", "rounds", "median seconds", "min seconds", "max seconds",
                                     "median load"])
    return times.groupby(["model", "call"], sort=False).agg(
        rounds=("round", "count"), **{"median seconds": ("seconds", "median"), "min seconds": ("seconds", "min"),
                                      "max seconds": ("seconds", "max"), "median load": ("load", "median")}
    ).reset_index()


def round_ratios(results: Mapping[str, object]) -> pd.DataFrame:
    """Per round: Opti-CAM's and Score-CAM's seconds (the speed claim's units)."""
    times = timing_rows(results)
    if times.empty:
        return pd.DataFrame(columns=["round", OPTI, "score-cam", "ratio"])
    wide = times.pivot(index="round", columns="call", values="seconds").reset_index()
    return wide.assign(ratio=wide[OPTI] / wide["score-cam"])[["round", OPTI, "score-cam", "ratio"]]


def example_maps(results: Mapping[str, object], model_name: str) -> dict[str, np.ndarray]:
    """``{"images": [k, 3, H, W], <method>: [k, H, W]}`` (float32) of the first photos of ``model_name``."""
    return {k: v.astype(np.float32) for k, v in results[f"faithfulness-{model_name}"].arrays["examples"].items()}


def pairs(table: pd.DataFrame, measure: str, a: str, b: str, by: str = "method") -> pd.DataFrame:
    """``paired`` on one model's per-photo table: the photos both ``a`` and ``b`` were scored on."""
    return paired(table, measure, a, b, by=by)
