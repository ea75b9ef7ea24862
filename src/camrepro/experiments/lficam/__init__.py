"""The ``lficam`` chapter: LFI-CAM trained end to end against the plain backbone and ABN.

Lee, Park, Oh, Kwak, "LFI-CAM: Learning Feature Importance for Better Visual Explanation", ICCV 2021; the
baseline is Fukui et al., "Attention Branch Network", CVPR 2019. Three networks share one backbone definition
(:mod:`camrepro.models.resnet_cifar`): the plain ResNet (explained by Grad-CAM at its last stage), ABN
(:mod:`camrepro.models.abn`) and LFI-CAM (:mod:`camrepro.models.lficam`), explained by their own attention
maps. Parameters in :mod:`.params`, the compute units in :mod:`.compute`, tables in :mod:`.tables`, the
claims in :mod:`.claims`.
"""

from camrepro.experiments.chapter import Chapter
from camrepro.experiments.lficam.claims import claims as chapter_claims
from camrepro.experiments.lficam.compute import training_throughput, units
from camrepro.experiments.lficam.params import KINDS, SCHEMA

CHAPTER = Chapter(
    name="lficam",
    title="LFI-CAM: learning the feature importance, end to end",
    schema=SCHEMA,
    units=units,
    claims_from=chapter_claims,
    paper="LFI-CAM",
    budgets={"smoke": 35.0, "book": 600.0},
)

__all__ = ["CHAPTER", "KINDS", "training_throughput"]
