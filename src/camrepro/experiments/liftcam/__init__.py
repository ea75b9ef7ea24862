"""The ``liftcam`` chapter: how well CAM coefficients approximate the SHAP values of the activation maps, how
faithful the resulting maps are, and what they cost.

Jung & Oh, "Towards Better Explanations of Class Activation Mapping", ICCV 2021. For each model and each
layer kind — ``last`` (linear tail: global average pooling + fully connected, as ResNet-50's in the paper)
and ``nonlinear`` (a tail with a convolution, batch-norm and ReLU6, non-linear as VGG16's) — the chapter
samples ground-truth SHAP values of the activation maps, compares every CAM's coefficients with them, scores
every CAM's maps (AD/AI/AG, insertion/deletion, grid pointing game) and times LIFT-CAM against a forward
pass, Grad-CAM and the sampling methods. Parameters in :mod:`.params`, compute units in :mod:`.compute`,
tables in :mod:`.tables`, claims in :mod:`.claims`.
"""

from camrepro.experiments.chapter import Chapter
from camrepro.experiments.liftcam import claims, compute, params, tables

CHAPTER = Chapter(
    name="liftcam",
    title="LIFT-CAM: CAM coefficients as SHAP values of the activation maps",
    schema=params.SCHEMA,
    units=compute.units,
    claims_from=claims.claims,
    paper="LIFT-CAM",
    budgets={"smoke": 35.0, "book": 540.0},
)

__all__ = ["CHAPTER", "claims", "compute", "params", "tables"]
