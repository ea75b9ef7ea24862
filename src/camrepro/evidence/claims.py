"""Claims with their evidence: the rule stated before the data, the per-unit values, the interval, the verdict.

A :class:`Claim` is one sentence of a paper that a chapter tests. It is decided by one or more
:class:`Condition` s — e.g. "LIFT-CAM agrees with SHAP better than Grad-CAM" at each model and layer. A
condition holds the paired values per unit (photo, grid, seed) on both sides, the statistic, its 95 %
interval and the rule's threshold; its outcome is

- **holds** when the whole interval lies on the claim's side of the threshold,
- **fails** when the whole interval lies on the other side,
- **undecided** otherwise (and always when it rests on one unit of a measure that is not exact).

The claim's verdict follows from its conditions' outcomes (:func:`decide`):

==========================  ======================================================================
reproduced                  every condition holds
partly reproduced           some conditions hold and others fail
not reproduced              some fail and none holds (the rest, if any, undecided)
inconclusive at this scale  none fails and some are undecided: the interval does not clear the
                            threshold; ``n_to_decide`` is the number of units that would
not testable here           no condition could be measured here (the reason is given)
==========================  ======================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from camrepro.evidence.intervals import Interval, bootstrap, n_to_decide, t_interval

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive at this scale"
NOT_TESTABLE = "not testable here"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)

HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
INTERVALS = ("bootstrap", "t")


@dataclass(frozen=True)
class Rule:
    """The claim holds where the effect is ``above`` (or ``below``) ``threshold``; ``text`` says it in words."""

    threshold: float
    holds_when: str = "above"
    text: str = ""

    def __post_init__(self) -> None:
        if self.holds_when not in ("above", "below"):
            raise ValueError(f"Rule.holds_when must be 'above' or 'below', got {self.holds_when!r}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"Rule.threshold must be finite, got {self.threshold}")

    def describe(self) -> str:
        side = ">" if self.holds_when == "above" else "<"
        return self.text or f"95 % interval {side} {self.threshold:g}"


@dataclass(frozen=True)
class Condition:
    """One decided comparison: per-unit values, the statistic's interval, the rule, the outcome."""

    label: str
    measure: str
    statistic: str
    units: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray | None
    a_label: str
    b_label: str
    interval: Interval
    rule: Rule
    exact: bool = False

    @property
    def n(self) -> int:
        return self.interval.n

    @property
    def outcome(self) -> str:
        iv, thr = self.interval, self.rule.threshold
        if iv.n < 2 and not self.exact:
            return UNDECIDED
        above, below = iv.low > thr, iv.high < thr
        if self.rule.holds_when == "below":
            above, below = below, above
        return HOLDS if above else FAILS if below else UNDECIDED

    @property
    def n_to_decide(self) -> int | None:
        return None if self.outcome != UNDECIDED else n_to_decide(self.interval, self.rule.threshold)

    def evidence(self) -> pd.DataFrame:
        """The per-unit values it was decided on: unit, both sides (and their difference when paired)."""
        frame = pd.DataFrame({"condition": self.label, "unit": list(self.units), self.a_label: self.a})
        if self.b is not None:
            frame[self.b_label] = self.b
        return frame


def condition(label: str, units: Sequence[object], a: Sequence[float], b: Sequence[float] | None = None, *,
              rule: Rule, measure: str = "", statistic: str | None = None, interval: str = "bootstrap",
              a_label: str = "a", b_label: str = "b", exact: bool = False, seed: int = 0) -> Condition:
    """A :class:`Condition` from paired per-unit values (``a`` and ``b`` aligned with ``units``).

    ``statistic`` defaults to ``"mean difference"`` with ``b`` and ``"mean"`` without. ``interval``:
    ``"bootstrap"`` (paired, over units, ``seed``) for photos and grids, ``"t"`` for seeds. ``exact``: the
    measure has no sampling error at n = 1 (a deterministic identity), so one unit may decide it.
    """
    units = tuple(str(u) for u in units)
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = None if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
    if len(units) != a.size or (b is not None and b.size != a.size):
        raise ValueError(f"condition {label!r}: {len(units)} units but {a.size} and "
                         f"{None if b is None else b.size} values; pair them by unit")
    if len(set(units)) != len(units):
        raise ValueError(f"condition {label!r}: a unit appears twice; each unit is counted once")
    if a_label == b_label:
        raise ValueError(f"condition {label!r}: the two sides need different labels")
    if interval not in INTERVALS:
        raise ValueError(f"condition {label!r}: interval must be one of {INTERVALS}, got {interval!r}")
    statistic = statistic or ("mean difference" if b is not None else "mean")
    if interval == "t":
        if statistic not in ("mean difference", "mean"):
            raise ValueError(f"condition {label!r}: the t-interval covers a mean or a mean difference")
        iv = t_interval(a, b)
    else:
        iv = bootstrap(a, b, statistic=statistic, seed=seed)
    return Condition(label=label, measure=measure, statistic=statistic, units=units, a=a, b=b,
                     a_label=a_label, b_label=b_label, interval=iv, rule=rule, exact=exact)


def decide(outcomes: Iterable[str]) -> str:
    """The verdict from the conditions' outcomes (the table in this module's docstring)."""
    outcomes = list(outcomes)
    unknown = set(outcomes) - {HOLDS, FAILS, UNDECIDED}
    if unknown:
        raise ValueError(f"unknown outcomes {sorted(unknown)}")
    if not outcomes:
        return NOT_TESTABLE
    holds, fails = outcomes.count(HOLDS), outcomes.count(FAILS)
    if holds and fails:
        return PARTLY
    if fails:
        return NOT_REPRODUCED
    if holds == len(outcomes):
        return REPRODUCED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Claim:
    """A paper's claim as this compendium tested it.

    ``published``: the paper's figure or words, quoted, with ``source``. ``rule``: how the verdict is
    decided, stated before the data. ``conditions``: what it was decided on. ``untestable``: why no
    condition could be measured here (then ``conditions`` is empty and the verdict is "not testable here").
    """

    key: str
    paper: str
    chapter: str
    text: str
    published: str
    source: str
    rule: str
    conditions: tuple[Condition, ...] = field(default_factory=tuple)
    untestable: str = ""
    digits: int = 2

    def __post_init__(self) -> None:
        for name in ("key", "paper", "chapter", "text", "rule"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"Claim.{name} must not be empty (claim {self.key!r})")
        if bool(self.conditions) == bool(self.untestable):
            raise ValueError(f"claim {self.key!r}: give conditions, or the reason it is untestable, not both")
        labels = [c.label for c in self.conditions]
        if len(set(labels)) != len(labels):
            raise ValueError(f"claim {self.key!r}: two conditions share a label")
        object.__setattr__(self, "conditions", tuple(self.conditions))

    @property
    def verdict(self) -> str:
        return decide(c.outcome for c in self.conditions)

    @property
    def n(self) -> str:
        """The units it rests on: ``16`` or ``8-16`` when conditions differ."""
        ns = sorted({c.n for c in self.conditions})
        return "—" if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"

    @property
    def n_to_decide(self) -> int | None:
        """For an inconclusive claim: the largest ``n_to_decide`` of its undecided conditions (None if some
        undecided condition gives no estimate, e.g. it rests on one unit)."""
        if self.verdict != INCONCLUSIVE:
            return None
        needed = [c.n_to_decide for c in self.conditions if c.outcome == UNDECIDED]
        return None if any(n is None for n in needed) else max(needed)

    def ours(self) -> str:
        """Each condition as ``label: +12.3 [8.1, 16.0], n = 16 (holds)``; the untestable reason otherwise."""
        if self.untestable:
            return self.untestable
        return "; ".join(f"{c.label}: {c.interval.format(self.digits)} ({c.outcome})" for c in self.conditions)

    def decision(self) -> str:
        """The verdict in words, with the n that would decide an inconclusive claim."""
        verdict = self.verdict
        if verdict != INCONCLUSIVE:
            return verdict
        needed = self.n_to_decide
        return (f"{verdict} (≈ {needed} units would decide it)" if needed else
                f"{verdict} (the estimate gives no sample size that would decide it)")


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per claim: what the report shows."""
    rows = [{"key": c.key, "paper": c.paper, "chapter": c.chapter, "claim": c.text, "published": c.published,
             "source": c.source, "ours": c.ours(), "n": c.n, "verdict": c.verdict, "decision": c.decision(),
             "n_to_decide": c.n_to_decide, "rule": c.rule} for c in claims]
    return pd.DataFrame(rows, columns=["key", "paper", "chapter", "claim", "published", "source", "ours", "n",
                                       "verdict", "decision", "n_to_decide", "rule"])


def conditions_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per condition: effect, interval, n, threshold and outcome (the forest plots' data)."""
    rows = []
    for c in claims:
        for d in c.conditions:
            rows.append({"key": c.key, "paper": c.paper, "chapter": c.chapter, "condition": d.label,
                         "measure": d.measure, "statistic": d.statistic, "interval": d.interval.method,
                         "estimate": d.interval.estimate, "low": d.interval.low, "high": d.interval.high,
                         "n": d.n, "threshold": d.rule.threshold, "holds_when": d.rule.holds_when,
                         "outcome": d.outcome, "n_to_decide": d.n_to_decide})
    return pd.DataFrame(rows, columns=["key", "paper", "chapter", "condition", "measure", "statistic", "interval",
                                       "estimate", "low", "high", "n", "threshold", "holds_when", "outcome",
                                       "n_to_decide"])


def evidence_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    """Every per-unit value every verdict was decided on (long form: key, condition, unit, side, value)."""
    rows = []
    for c in claims:
        for d in c.conditions:
            sides = [(d.a_label, d.a)] + ([(d.b_label, d.b)] if d.b is not None else [])
            for side, values in sides:
                rows.extend({"key": c.key, "condition": d.label, "unit": u, "side": side, "value": float(v)}
                            for u, v in zip(d.units, values))
    return pd.DataFrame(rows, columns=["key", "condition", "unit", "side", "value"])
