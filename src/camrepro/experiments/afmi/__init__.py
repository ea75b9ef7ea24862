"""The ``afmi`` chapter: A-FMI (Zhang et al., arXiv:2104.05527, reconstructed from its abstract) against
reference-based pixel attributions and CAMs — reference insensitivity, faithfulness, class discrimination on
grids and a saturation example (see :mod:`.compute` for the units and :mod:`.claims` for the rules)."""

from camrepro.experiments.afmi.claims import claims_from
from camrepro.experiments.afmi.compute import units
from camrepro.experiments.afmi.params import CHAPTER as NAME
from camrepro.experiments.afmi.params import PAPER, SCHEMA
from camrepro.experiments.chapter import Chapter

CHAPTER = Chapter(name=NAME, title="A-FMI: feature-map importance of the difference from a reference",
                  schema=SCHEMA, units=units, claims_from=claims_from, paper=PAPER,
                  budgets={"smoke": 35.0, "book": 300.0})
