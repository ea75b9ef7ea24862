"""The liftcam chapter's claims, decided on the per-photo, per-grid and per-round tables of its units.

Every comparison pairs LIFT-CAM with one other CAM on the units both were measured on (a method run on
fewer photos is compared on those; the condition's n says how many). At a layer whose tail is linear,
LRP-CAM's coefficients equal LIFT-CAM's by construction (both reduce to w_ck · mean(A_k), the exact SHAP
values), so that pair is compared only where the tail is non-linear.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from camrepro.evidence import Claim, Condition, Rule, condition
from camrepro.experiments.chapter import Results
from camrepro.experiments.kit import metric_tables
from camrepro.experiments.liftcam import tables
from camrepro.experiments.liftcam.params import LIFT, OTHERS, PAPER_NAMES, SAMPLING

PAPER = "LIFT-CAM"
CHAPTER = "liftcam"
SOURCE = ("Jung & Oh, ICCV 2021, abstract (quoted); the paper's tables are not transcribed in the "
          "compendium's reference data, so no published number is quoted")
ABSTRACT_ACCURACY = ("“LIFT-CAM can estimate the SHAP values of the activation maps with high speed and "
                     "accuracy”")
ABSTRACT_FAITHFULNESS = ("“it greatly outperforms other previous CAM-based methods in both qualitative and "
                         "quantitative aspects”")
# The speed claim in numbers, fixed before any timing: "about one forward pass" and "near Grad-CAM" = a
# typical (geometric-mean) batch-1 time below twice theirs, the cost of one more pass; "far faster than
# sampling" = a typical time at least ten times below the sampler's, an order of magnitude.
ABOUT_ONE_FORWARD = 2.0
NEAR_GRAD_CAM = 2.0
FAR_FASTER = 10.0
LIFT_NAME = PAPER_NAMES[LIFT]


def _linear_tails(results: Results) -> dict[tuple[str, str], bool]:
    frames = [tables.faithfulness(results), tables.shap_quality(results)]
    return {(m, k): bool(v) for frame in frames
            for (m, k), v in frame.groupby(["model", "layer_kind"]).tail_is_linear.first().items()}


def lift_conditions(table: pd.DataFrame, measures: Mapping[str, bool], linear: Mapping[tuple[str, str], bool],
                    *, unit: str = "image") -> list[Condition]:
    """LIFT-CAM against every other CAM of ``table`` (columns model, layer_kind, method, ``unit`` and the
    ``measures``, each mapped to whether higher is better), per model and layer, paired by ``unit``."""
    out = []
    for (model, kind), group in table.groupby(["model", "layer_kind"], sort=False):
        present = set(group.method)
        if LIFT not in present:
            continue
        for other in OTHERS:
            if other not in present or (other == "lrp-cam" and linear.get((model, kind), False)):
                continue
            for measure, higher in measures.items():
                pair = metric_tables.paired(group, measure, LIFT, other, unit=unit)
                if pair.empty:
                    continue
                out.append(condition(
                    f"{tables.label(model, kind)} · {measure}: {LIFT_NAME} vs {PAPER_NAMES[other]}",
                    pair[unit], pair[LIFT], pair[other], rule=Rule(0.0, "above" if higher else "below"),
                    measure=measure, a_label=LIFT_NAME, b_label=PAPER_NAMES[other]))
    return out


def _claim(key: str, text: str, published: str, rule: str, conditions: list[Condition],
           why_not: str) -> Claim:
    if not conditions:
        return Claim(key, PAPER, CHAPTER, text, published, SOURCE, rule, untestable=why_not)
    return Claim(key, PAPER, CHAPTER, text, published, SOURCE, rule, conditions=tuple(conditions))


PAIRED_RULE = ("per model, layer, other CAM and measure: the mean over {units} of the paired difference "
               "LIFT-CAM − other, its 95 % paired-bootstrap interval {side}; LRP-CAM is compared only at "
               "the non-linear tail (at a linear one its coefficients equal LIFT-CAM's by construction), "
               "Score-CAM and LIME-CAM on the photos they ran on")


def accuracy_claim(results: Results) -> Claim:
    """LIFT-CAM's coefficients agree with Monte-Carlo SHAP better than every other CAM's."""
    measures = {"spearman": True, "normalised_error": False}
    conditions = lift_conditions(tables.agreement(results), measures, _linear_tails(results))
    return _claim(
        "liftcam-shap-accuracy",
        "LIFT-CAM's coefficients approximate the SHAP values of the activation maps better than the other "
        "CAMs' (LRP-CAM, LIME-CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Score-CAM): a higher Spearman ρ and a "
        "lower normalised error with Monte-Carlo permutation SHAP, per photo",
        ABSTRACT_ACCURACY,
        PAIRED_RULE.format(units="photos", side="above 0 for Spearman ρ, below 0 for the normalised error"),
        conditions, "no method's coefficients were compared with SHAP values")


def faithfulness_claims(results: Results) -> list[Claim]:
    """LIFT-CAM's maps are more faithful than the other CAMs' (three claims: AD/AI/AG, insertion/deletion,
    grid pointing game)."""
    linear = _linear_tails(results)
    higher = metric_tables.HIGHER_IS_BETTER
    faith = tables.faithfulness(results)
    drop = lift_conditions(faith, {m: higher[m] for m in ("AD", "AI", "AG")}, linear)
    curves = lift_conditions(faith, {m: higher[m] for m in ("insertion", "deletion")}, linear)
    grid = tables.grid_units(results).rename(columns={"hit": "grid_hit", "energy": "grid_energy"})
    pointing = lift_conditions(grid, {m: higher[m] for m in ("grid_hit", "grid_energy")}, linear, unit="grid")
    better = "above 0 where higher is better, below 0 where lower is"
    return [
        _claim("liftcam-faithfulness-drop-gain",
               "LIFT-CAM's maps are more faithful than the other CAMs' by Average Drop (lower), Average "
               "Increase and Average Gain (higher), pixel-space masking, per photo",
               ABSTRACT_FAITHFULNESS, PAIRED_RULE.format(units="photos", side=better), drop,
               "no map was scored"),
        _claim("liftcam-faithfulness-insertion-deletion",
               "LIFT-CAM's maps are more faithful than the other CAMs' by insertion AUC (higher) and "
               "deletion AUC (lower), per photo",
               ABSTRACT_FAITHFULNESS, PAIRED_RULE.format(units="photos", side=better), curves,
               "no insertion or deletion curve was computed"),
        _claim("liftcam-faithfulness-grid",
               "LIFT-CAM's maps point at the target's quadrant of a 2×2 grid of four classes more often, "
               "and put more of their energy there, than the other CAMs' (the grid's four quadrants "
               "averaged)",
               ABSTRACT_FAITHFULNESS, PAIRED_RULE.format(units="grids", side="above 0"), pointing,
               "no grid was explained"),
    ]


def _ratio(label: str, units: pd.Series, a: pd.Series, b: pd.Series, rule: Rule, a_label: str,
           b_label: str) -> Condition:
    return condition(label, [f"round {u}" for u in units], a, b, rule=rule, measure="seconds per image",
                     statistic="geometric mean ratio", a_label=a_label, b_label=b_label)


def speed_claim(results: Results) -> Claim:
    """LIFT-CAM costs about one forward pass, near Grad-CAM, and far less than SHAP sampling, Score-CAM and
    LIME-CAM."""
    conditions = []
    near = Rule(NEAR_GRAD_CAM, "below", f"geometric-mean ratio < {NEAR_GRAD_CAM:g}")
    one = Rule(ABOUT_ONE_FORWARD, "below", f"geometric-mean ratio < {ABOUT_ONE_FORWARD:g}")
    far = Rule(FAR_FASTER, "above", f"geometric-mean ratio > {FAR_FASTER:g}")
    rounds = tables.timing_rounds(results)
    for (model, kind), group in rounds.groupby(["model", "layer_kind"], sort=False):
        where = tables.label(model, kind)
        for name, frame in group.groupby("set", sort=False):
            wide = frame.pivot(index="round", columns="call", values="seconds")
            if LIFT not in wide:
                continue
            if name == "fast":
                if "forward" in wide:
                    conditions.append(_ratio(f"{where} · LIFT-CAM / forward pass", wide.index, wide[LIFT],
                                             wide["forward"], one, LIFT_NAME, "forward pass"))
                if "grad-cam" in wide:
                    conditions.append(_ratio(f"{where} · LIFT-CAM / Grad-CAM", wide.index, wide[LIFT],
                                             wide["grad-cam"], near, LIFT_NAME, "Grad-CAM"))
            else:
                for other in SAMPLING:
                    if other in wide:
                        conditions.append(_ratio(f"{where} · {PAPER_NAMES[other]} / LIFT-CAM", wide.index,
                                                 wide[other], wide[LIFT], far, PAPER_NAMES[other], LIFT_NAME))
    linear = _linear_tails(results)
    for (model, kind), group in tables.shap_timing(results).groupby(["model", "layer_kind"], sort=False):
        if linear.get((model, kind), False):
            continue
        wide = group.pivot(index="round", columns="call", values="seconds")
        conditions.append(_ratio(f"{tables.label(model, kind)} · SHAP sampling / LIFT-CAM", wide.index,
                                 wide["shap"], wide[LIFT], far, "SHAP sampling", LIFT_NAME))
    return _claim(
        "liftcam-speed",
        f"LIFT-CAM costs about one forward pass (< {ABOUT_ONE_FORWARD:g}× its time) and runs near Grad-CAM "
        f"(< {NEAR_GRAD_CAM:g}× its time), and far faster (> {FAR_FASTER:g}×) than sampling the SHAP "
        "values, Score-CAM and LIME-CAM, at batch 1",
        ABSTRACT_ACCURACY,
        "batch-1 seconds per image timed interleaved call by call, one pair per round (SHAP sampling: per "
        "photo); the geometric-mean ratio over rounds with its 95 % paired-bootstrap interval below "
        f"{NEAR_GRAD_CAM:g} (against a forward pass and Grad-CAM) or above {FAR_FASTER:g} (a sampler against "
        "LIFT-CAM); SHAP sampling is timed only at non-linear tails (at a linear tail the game is additive "
        "and its sampler needs one pass over the channels)",
        conditions, "nothing was timed")


def claims(results: Results, params: dict[str, object]) -> list[Claim]:
    """The chapter's claims: SHAP accuracy, faithfulness (three), speed."""
    return [accuracy_claim(results), *faithfulness_claims(results), speed_claim(results)]
