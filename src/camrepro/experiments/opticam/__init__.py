"""The ``opticam`` chapter: Opti-CAM against the baselines, and the flaw of Average Drop / Increase that
Average Gain fixes.

Zhang, Torres, Sicre, Avrithis, Ayache, "Opti-CAM: Optimizing saliency maps for interpretability", CVIU 248
(2024) 104101. Parameters in :mod:`.params`, compute units in :mod:`.compute`, tables in :mod:`.tables`,
claims in :mod:`.claims`.
"""

from camrepro.experiments.chapter import Chapter
from camrepro.experiments.opticam import claims, compute, params, tables

CHAPTER = Chapter(
    name="opticam",
    title="Opti-CAM: optimised saliency maps, and a flaw in two evaluation metrics",
    schema=params.SCHEMA,
    units=compute.units,
    claims_from=claims.claims,
    paper="Opti-CAM",
    budgets={"smoke": 35.0, "book": 420.0},
)

__all__ = ["CHAPTER", "claims", "compute", "params", "tables"]
