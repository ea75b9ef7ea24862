"""The statistics every chapter's claims use: intervals over units, conditions, claims and verdicts.

See :mod:`camrepro.evidence.intervals` (paired bootstrap over photos, t-interval over seeds, the n that would
decide) and :mod:`camrepro.evidence.claims` (the five verdicts and how they are decided).
"""

from camrepro.evidence.claims import (
    FAILS, HOLDS, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED, UNDECIDED, VERDICTS, Claim,
    Condition, Rule, claims_frame, condition, conditions_frame, decide, evidence_frame,
)
from camrepro.evidence.intervals import Interval, bootstrap, n_to_decide, t_interval

__all__ = ["Claim", "Condition", "FAILS", "HOLDS", "INCONCLUSIVE", "Interval", "NOT_REPRODUCED", "NOT_TESTABLE",
           "PARTLY", "REPRODUCED", "Rule", "UNDECIDED", "VERDICTS", "bootstrap", "claims_frame", "condition",
           "conditions_frame", "decide", "evidence_frame", "n_to_decide", "t_interval"]
