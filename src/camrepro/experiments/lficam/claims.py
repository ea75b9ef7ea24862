"""The LFI-CAM paper's claims as this chapter tests them, each rule stated before the data.

Units: a **seed** for accuracy and attention quality (one training of each network per seed, paired by seed:
the same seed gives the three networks the same data order and seeds their initialisation alike), with a
t-interval over seeds; a **test image** for stability (one set of models per network, trained under the
stability settings; every model explains the same images), with a paired bootstrap over images.
"""

from __future__ import annotations

import pandas as pd

from camrepro.evidence import Claim, Rule, condition
from camrepro.experiments.chapter import Results
from camrepro.experiments.kit.metric_tables import paired
from camrepro.experiments.lficam import tables
from camrepro.experiments.lficam.params import CHAPTER, LABELS

PAPER = "LFI-CAM"
ABSTRACT = "Lee, Park, Oh, Kwak, ICCV 2021, abstract (its accuracy tables are not transcribed in the reference folder)"
STABILITY_SOURCE = ("LFI-CAM official repository, asset/IOU_Test.png (reference/lficam_stability_iou.csv): mean "
                    "pairwise IoU of attention maps between models trained with 5 hyper-parameter settings")
# Half the smallest published gap between the two networks' stability: LFI-CAM's lowest IoU (CIFAR-10, 0.60)
# minus ABN's highest (STL-10, 0.32) is 0.28; a gap of at least half of it is "far more stable" at this scale.
STABILITY_MARGIN = 0.14
# the measures the quality claim is decided on, and the side of LFI-CAM − ABN on which it holds
QUALITY_RULES = {"AD": "below", "AI": "above", "AG": "above", "energy_pointing": "above"}

ACCURACY_RULE = ("Unit: a seed (each network trained once per seed, paired by seed). Effect: LFI-CAM's test "
                 "accuracy minus {other}'s, in points, with a 95 % t-interval over the seeds. Reproduced if "
                 "the interval lies above 0; not reproduced if it lies below 0; inconclusive otherwise.")
QUALITY_RULE = ("Unit: a seed, because the claim is about what the architecture learns: the seed-to-seed "
                "variation of a trained network's maps is the uncertainty that matters, and averaging each "
                "seed's network over many test images makes the image sampling small beside it. Per seed, "
                "the mean over the first test images of Average Drop, Average Increase, Average Gain (pixel-"
                "space masking, the predicted class) and the energy pointing game on the item's exact mask "
                "(% of the map's mass inside it); effect LFI-CAM − ABN with a 95 % t-interval over seeds. "
                "Each measure holds where the interval lies on LFI-CAM's better side of 0 (AD below, the others "
                "above) and fails where it lies on the other side. Reproduced if all hold; partly reproduced "
                "if some hold and some fail; not reproduced if some fail and none holds; inconclusive "
                "otherwise.")
STABILITY_RULE = ("Unit: a test image. Per image, the IoU of the thresholded attention maps averaged over every "
                  "pair of models trained under the stability settings (setting i with seed i); effect LFI-CAM "
                  "− ABN with a 95 % paired bootstrap interval over the images (it covers the choice of images, "
                  "not that of the training runs: there is one set of models per network). Two conditions: "
                  "more stable (interval above 0) and far more stable (interval above "
                  f"{STABILITY_MARGIN}, half the smallest published gap 0.60 − 0.32). Reproduced if both "
                  "hold; partly reproduced if LFI-CAM is clearly more stable but the gap is clearly below "
                  f"{STABILITY_MARGIN}; not reproduced if the gap is clearly below {STABILITY_MARGIN} and "
                  "LFI-CAM is not clearly more stable; inconclusive otherwise.")


def _paired_seeds(per_seed: pd.DataFrame, measure: str, a: str = "lficam", b: str = "abn") -> pd.DataFrame:
    """Seeds both networks were trained with: columns seed, a, b."""
    return paired(per_seed, measure, a, b, by="network", unit="seed")


def accuracy_claim(results: Results, other: str) -> Claim:
    """LFI-CAM more accurate than ``other`` (``"plain"`` or ``"abn"``), paired by seed."""
    by_seed = _paired_seeds(tables.accuracy(results), "test_accuracy", "lficam", other)
    name = "the plain backbone" if other == "plain" else "ABN"
    published = ("LFI-CAM \"outperforms the baseline models' accuracy on the classification tasks\"" if other == "plain"
                 else "the paper's accuracy tables report LFI-CAM beside ABN on the same backbones")
    return Claim(
        key=f"lficam-accuracy-vs-{'backbone' if other == 'plain' else 'abn'}", paper=PAPER, chapter=CHAPTER,
        text=f"LFI-CAM is more accurate than {name}", published=published, source=ABSTRACT,
        rule=ACCURACY_RULE.format(other=LABELS[other]), digits=1,
        conditions=(condition(f"test accuracy, LFI-CAM − {LABELS[other]} (points)", by_seed.seed,
                              by_seed.lficam, by_seed[other], rule=Rule(0.0, "above"), measure="test accuracy (%)",
                              interval="t", a_label="LFI-CAM", b_label=LABELS[other]),))


def quality_claim(results: Results) -> Claim:
    """LFI-CAM's maps better than ABN's on AD, AI, AG and the energy pointing game, paired by seed."""
    per_seed = tables.quality_per_seed(results)
    present = [m for m in QUALITY_RULES if m in tables.measures(results)]
    conditions = []
    for measure in present:
        by_seed = _paired_seeds(per_seed, measure)
        name = tables.QUALITY_NAMES[measure]
        conditions.append(condition(f"{name}, LFI-CAM − ABN", by_seed.seed, by_seed.lficam, by_seed.abn,
                                    rule=Rule(0.0, QUALITY_RULES[measure]), measure=name, interval="t",
                                    a_label="LFI-CAM", b_label="ABN"))
    return Claim(key="lficam-map-quality", paper=PAPER, chapter=CHAPTER,
                 text="LFI-CAM's attention maps are better explanations than ABN's",
                 published="LFI-CAM \"significantly improves on the previous works in terms of attention map "
                           "quality\"", source="Lee, Park, Oh, Kwak, ICCV 2021, abstract",
                 rule=QUALITY_RULE, conditions=tuple(conditions), digits=1)


def stability_claim(results: Results) -> Claim:
    """LFI-CAM's maps more stable than ABN's across hyper-parameter settings, paired by test image."""
    table = tables.stability(results)
    hyper = table[table.varied == "hyper-parameters"]
    by_image = paired(hyper, "iou", "lficam", "abn", by="network", unit="image")
    ref = tables.published_stability()
    conditions = tuple(
        condition(label, by_image.image, by_image.lficam, by_image.abn, rule=Rule(threshold, "above"),
                  measure="mean pairwise IoU", interval="bootstrap", a_label="LFI-CAM", b_label="ABN")
        for label, threshold in (("IoU, LFI-CAM − ABN: more stable", 0.0),
                                 (f"IoU, LFI-CAM − ABN: by at least {STABILITY_MARGIN}", STABILITY_MARGIN)))
    return Claim(key="lficam-stability", paper=PAPER, chapter=CHAPTER,
                 text="LFI-CAM's attention maps are far more stable than ABN's across hyper-parameter settings",
                 published=(f"mean pairwise IoU LFI-CAM {ref['LFI-CAM'].min():.2f}-{ref['LFI-CAM'].max():.2f} "
                            f"vs ABN {ref['ABN'].min():.2f}-{ref['ABN'].max():.2f} (Cat-Dog, CIFAR-10, STL-10)"),
                 source=STABILITY_SOURCE, rule=STABILITY_RULE, conditions=conditions, digits=2)


def claims(results: Results, params: dict[str, object]) -> list[Claim]:
    """The chapter's four claims, decided on its results."""
    return [accuracy_claim(results, "plain"), accuracy_claim(results, "abn"), quality_claim(results),
            stability_claim(results)]
