"""The A-FMI claims, decided on per-photo (per-grid) evidence.

The abstract gives no number, so each claim quotes its words. Every rule is stated here, before the data:
each condition compares A-FMI with one other method on the same units (photos, or grids), paired by unit,
with a paired bootstrap 95 % interval of the mean difference; the verdict follows from the conditions
(:mod:`camrepro.evidence`). The layer methods are read at the first choice of ``layers``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from camrepro.evidence import Claim, Rule, condition
from camrepro.experiments.afmi import tables
from camrepro.experiments.afmi.params import CHAPTER, INPUT, PAPER, SOURCE
from camrepro.experiments.kit.metric_tables import paired

QUOTED = "no figure; the abstract states it in words"
INSENSITIVITY_MEASURES = {"rank_correlation_pooled": "rank corr. (pooled)",
                          "topk_iou_pooled": "top-k IoU (pooled)"}
FAITHFULNESS_MEASURES = {"AG": "above", "insertion": "above", "deletion": "below"}
GRID_HIT_FLOOR = 0.5
GRID_MARGIN = 0.10
SATURATION_RHO_FLOOR = 0.5

RULES = {
    "insensitivity": (
        "Per photo, a method's agreement across references is the mean over every pair of references of the "
        "rank correlation (a constant map counts as 0) and of the top-k IoU between its two maps, both on "
        "the maps pooled to the layer's grid (one resolution for every method: smooth upsampled CAMs agree "
        "more easily at full resolution). For each model, each other reference method (integrated "
        "gradients, DeepLIFT, LIFT-CAM with the same reference images) and each of the two measures, A-FMI "
        "minus the other method per photo: the condition holds when the 95 % interval of the mean "
        "difference lies above 0."),
    "faithfulness": (
        "For each model, each other method (Grad-CAM, LIFT-CAM, integrated gradients, DeepLIFT) and each "
        "measure — AG and insertion AUC (higher is better), deletion AUC (lower is better) — A-FMI minus "
        "the other method per photo: the condition holds when the 95 % interval of the mean difference lies "
        "on A-FMI's better side of 0."),
    "discrimination": (
        "Grid pointing game on 2×2 grids of photos of four predicted classes, one unit per grid (its four "
        "quadrant maps averaged; chance 25 %). For each model: A-FMI's hit rate has a 95 % interval above "
        f"{GRID_HIT_FLOOR:.0%}, and A-FMI minus Grad-CAM per grid has an interval above −{GRID_MARGIN:.0%} "
        "(not more than 10 points below the usual class-discriminative CAM)."),
    "saturation": (
        "The most confident photos explained through softmax(T · logits) at the highest temperature T. Per "
        "photo, each method's map is compared with its own map of the logit (rank correlation; a constant "
        "map counts as 0) and scored by deletion AUC. For each model: A-FMI minus Grad-CAM in rank "
        "correlation above 0, A-FMI minus Grad-CAM in deletion AUC below 0, and A-FMI's mean rank "
        f"correlation above {SATURATION_RHO_FLOOR} (its map survives saturation, not only less badly than "
        "Grad-CAM's)."),
}


def _name(method: str) -> str:
    return tables.METHOD_NAMES.get(method, method)


def _at_layer(table: pd.DataFrame, layer: str) -> pd.DataFrame:
    """The rows of the layer methods at ``layer`` and of the pixel attributions (which explain the input)."""
    return table[table.layer.isin([layer, INPUT])]


def _conditions(table: pd.DataFrame, measures: Mapping[str, str], labels: Mapping[str, str],
                threshold: float = 0.0, unit: str = "image") -> list:
    """A-FMI against every other method of ``table`` (one model, one layer), per measure: paired by unit."""
    out = []
    model = table.model.iloc[0]
    for other in [m for m in dict.fromkeys(table.method) if m != "a-fmi"]:
        for measure, side in measures.items():
            pairs = paired(table, measure, "a-fmi", other, unit=unit)
            if pairs.empty:
                continue
            out.append(condition(f"{model}: A-FMI − {_name(other)}, {labels.get(measure, measure)}",
                                 pairs[unit], pairs["a-fmi"], pairs[other],
                                 measure=labels.get(measure, measure), rule=Rule(threshold, side),
                                 a_label="A-FMI", b_label=_name(other)))
    return out


def insensitivity_claim(per_photo: pd.DataFrame, layer: str) -> Claim:
    """Claim 1 from :func:`tables.insensitivity_per_photo`."""
    conditions = []
    for _, table in _at_layer(per_photo, layer).groupby("model", sort=False):
        if "a-fmi" in set(table.method):
            conditions += _conditions(table, dict.fromkeys(INSENSITIVITY_MEASURES, "above"),
                                      INSENSITIVITY_MEASURES)
    return Claim("afmi-reference-insensitivity", PAPER, CHAPTER,
                 "Insensitive to the choice of reference image",
                 f"{QUOTED} (\"insensitivity to the choice of reference\")", SOURCE, RULES["insensitivity"],
                 conditions=tuple(conditions),
                 untestable="" if conditions else
                 "no A-FMI maps next to another reference method were computed")


def faithfulness_claim(per_photo: pd.DataFrame, layer: str) -> Claim:
    """Claim 2 from :func:`tables.faithfulness_per_photo`."""
    conditions = []
    for _, table in _at_layer(per_photo, layer).groupby("model", sort=False):
        if "a-fmi" in set(table.method):
            conditions += _conditions(table, FAITHFULNESS_MEASURES, {"insertion": "insertion AUC",
                                                                    "deletion": "deletion AUC"})
    return Claim("afmi-faithfulness", PAPER, CHAPTER, "Faithful, and better than popular attribution methods",
                 f"{QUOTED} (\"faithfulness\", \"superior explanation performance\")", SOURCE,
                 RULES["faithfulness"], conditions=tuple(conditions),
                 untestable="" if conditions else "no A-FMI faithfulness scores next to another method")


def discrimination_claim(grids: pd.DataFrame, layer: str) -> Claim:
    """Claim 3 from :func:`tables.grid_per_grid`."""
    conditions = []
    for model, table in _at_layer(grids, layer).groupby("model", sort=False):
        mine = table[table.method == "a-fmi"]
        if mine.empty:
            continue
        conditions.append(condition(f"{model}: A-FMI grid hit rate", mine.grid, mine.hit, measure="grid hit",
                                    rule=Rule(GRID_HIT_FLOOR, "above"), a_label="A-FMI"))
        pairs = paired(table, "hit", "a-fmi", "grad-cam", unit="grid")
        if not pairs.empty:
            conditions.append(condition(f"{model}: A-FMI − Grad-CAM, grid hit", pairs.grid, pairs["a-fmi"],
                                        pairs["grad-cam"], measure="grid hit",
                                        rule=Rule(-GRID_MARGIN, "above"), a_label="A-FMI",
                                        b_label="Grad-CAM"))
    return Claim("afmi-class-discrimination", PAPER, CHAPTER, "Class-discriminative",
                 f"{QUOTED} (\"class discriminability\")", SOURCE, RULES["discrimination"],
                 conditions=tuple(conditions),
                 untestable="" if conditions else "no A-FMI grid maps were computed")


def saturation_claim(per_photo: pd.DataFrame) -> Claim:
    """Claim 4 from :func:`tables.saturation_per_photo`."""
    conditions = []
    for model, table in per_photo.groupby("model", sort=False):
        top = table[table.temperature == table.temperature.max()]
        t = f"T = {float(top.temperature.iloc[0]):g}"
        rho = paired(top, "rank_correlation_with_logit_map", "a-fmi", "grad-cam")
        deletion = paired(top, "deletion_auc", "a-fmi", "grad-cam")
        if rho.empty:
            continue
        conditions += [
            condition(f"{model}, {t}: A-FMI − Grad-CAM, rank corr. with the logit map", rho.image,
                      rho["a-fmi"], rho["grad-cam"], measure="rank corr. with logit map",
                      rule=Rule(0.0, "above"), a_label="A-FMI", b_label="Grad-CAM"),
            condition(f"{model}, {t}: A-FMI − Grad-CAM, deletion AUC", deletion.image, deletion["a-fmi"],
                      deletion["grad-cam"], measure="deletion AUC", rule=Rule(0.0, "below"), a_label="A-FMI",
                      b_label="Grad-CAM"),
            condition(f"{model}, {t}: A-FMI rank corr. with the logit map", rho.image, rho["a-fmi"],
                      measure="rank corr. with logit map", rule=Rule(SATURATION_RHO_FLOOR, "above"),
                      a_label="A-FMI"),
        ]
    return Claim("afmi-saturation", PAPER, CHAPTER, "Addresses gradient saturation",
                 f"{QUOTED} (\"to address the gradient saturation problem\")", SOURCE, RULES["saturation"],
                 conditions=tuple(conditions), untestable="" if conditions else "no saturation run")


def claims_from(results: Mapping[str, object], params: Mapping[str, object]) -> list[Claim]:
    """The chapter's four claims from its results."""
    layer = list(params["layers"])[0]
    return [insensitivity_claim(tables.insensitivity_per_photo(results), layer),
            faithfulness_claim(tables.faithfulness_per_photo(results), layer),
            discrimination_claim(tables.grid_per_grid(results), layer),
            saturation_claim(tables.saturation_per_photo(results))]
