"""The ``benchmark`` chapter: every method side by side on the same pretrained models, photos and metrics.

For each network (MobileNetV2, EfficientNet-Lite0, each at its default layer) the predicted class of each
packaged photo is the target (the photos carry no labels). Each method explains it; Average Drop / Increase /
Gain (pixel-space masking, the Opti-CAM protocol), insertion and deletion AUC, the grid pointing game on 2×2
grids of photos of four predicted classes, time per image at batch 1 and batched interleaved with a plain
forward pass, and a model-randomisation sanity check (rank correlation of each method's maps on the trained
network with its maps on a randomly initialised copy; Adebayo et al., NeurIPS 2018). No single paper
compares all of these methods under one protocol; the claims it tests belong to the Opti-CAM paper.
"""

from camrepro.experiments.benchmark import claims, compute, params, tables
from camrepro.experiments.chapter import Chapter

CHAPTER = Chapter(
    name="benchmark",
    title="Benchmark: every method on the same models, photos and metrics",
    schema=params.SCHEMA,
    units=compute.units,
    claims_from=claims.claims_from,
    paper=None,
    budgets={"smoke": 35.0, "book": 600.0},
)

__all__ = ["CHAPTER", "claims", "compute", "params", "tables"]
