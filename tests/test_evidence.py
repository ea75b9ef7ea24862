"""Intervals, conditions and verdicts (camrepro.evidence): coverage, pairing, determinism, the vocabulary."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from camrepro import evidence
from camrepro.evidence import Claim, Rule, condition


def test_bootstrap_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(123)
    covered = 0
    trials = 300
    for trial in range(trials):
        sample = rng.normal(loc=2.0, scale=3.0, size=30)
        iv = evidence.bootstrap(sample, statistic="mean", resamples=2000, seed=trial)
        covered += iv.low <= 2.0 <= iv.high
    # percentile bootstrap at n = 30 under-covers slightly; a binomial 300-trial band around 0.95 is ±0.025
    assert 0.90 <= covered / trials <= 0.985


def test_t_interval_over_seeds_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    trials = 400
    covered = 0
    for _ in range(trials):
        iv = evidence.t_interval(rng.normal(1.0, 0.5, size=5))
        covered += iv.low <= 1.0 <= iv.high
    assert 0.92 <= covered / trials <= 0.98


def test_t_interval_matches_the_formula():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    iv = evidence.t_interval(x)
    half = 3.182446305284263 * x.std(ddof=1) / 2          # t_{0.975, 3} · sd / √4
    assert iv.estimate == pytest.approx(3.5)
    assert (iv.low, iv.high) == pytest.approx((3.5 - half, 3.5 + half))
    assert math.isinf(evidence.t_interval([1.0]).high)


def test_pairing_narrows_the_interval_when_units_vary_a_lot_between_themselves():
    # each photo has its own difficulty (large), the methods differ by a small constant-ish amount
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 10, size=20)
    a = difficulty + 1.0 + rng.normal(0, 0.2, size=20)
    b = difficulty
    paired = evidence.bootstrap(a, b, statistic="mean difference")
    # unpaired: resample each side on its own
    rng2 = np.random.default_rng(0)
    draws = [a[rng2.integers(0, 20, 20)].mean() - b[rng2.integers(0, 20, 20)].mean() for _ in range(2000)]
    lo, hi = np.quantile(draws, [0.025, 0.975])
    assert paired.low > 0.5 and paired.high < 1.5               # paired: decided, near +1
    assert lo < 0 < hi                                           # unpaired: swamped by the photos' spread
    assert paired.method == "paired bootstrap"


def test_bootstrap_is_deterministic_given_the_seed_and_changes_with_it():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=12), rng.normal(size=12)
    assert evidence.bootstrap(a, b, seed=3) == evidence.bootstrap(a, b, seed=3)
    assert evidence.bootstrap(a, b, seed=3) != evidence.bootstrap(a, b, seed=4)


def test_bootstrap_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="no units"):
        evidence.bootstrap([], [])
    with pytest.raises(ValueError, match="as many units"):
        evidence.bootstrap([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="not finite"):
        evidence.bootstrap([1, float("nan")], [1, 2])
    with pytest.raises(ValueError, match="≥ 2000"):
        evidence.bootstrap([1, 2], [1, 2], resamples=100)
    with pytest.raises(ValueError, match="positive"):
        evidence.bootstrap([1, -2], [1, 2], statistic="geometric mean ratio")
    with pytest.raises(ValueError, match="unknown statistic"):
        evidence.bootstrap([1, 2], [1, 2], statistic="median")


def test_geometric_mean_ratio_of_paired_times():
    iv = evidence.bootstrap([2.0, 4.0, 8.0], [1.0, 2.0, 4.0], statistic="geometric mean ratio")
    assert iv.estimate == pytest.approx(2.0) and iv.low == pytest.approx(2.0) and iv.high == pytest.approx(2.0)


def test_interval_format_reads_like_the_report():
    iv = evidence.Interval(12.34, 8.06, 16.04, 16, "paired bootstrap")
    assert iv.format() == "+12.3 [8.1, 16.0], n = 16"


def test_n_to_decide_scales_with_the_square_of_the_relative_width():
    iv = evidence.Interval(1.0, -1.0, 3.0, 16, "paired bootstrap")    # half-width 2, gap to 0 is 1
    assert evidence.n_to_decide(iv, 0.0) == 64
    assert evidence.n_to_decide(evidence.Interval(0.0, -1, 1, 8, "x"), 0.0) is None


def _claim(*conditions, **kw):
    return Claim(key="k", paper="Opti-CAM", chapter="opticam", text="A beats B", published="AG 27.3 vs 21.2",
                 source="Table 1", rule="mean paired AG difference > 0", conditions=conditions, **kw)


def test_a_constructed_decided_case_is_reproduced_and_its_mirror_not_reproduced():
    units = [f"photo{i}" for i in range(16)]
    rng = np.random.default_rng(5)
    b = rng.uniform(0, 50, 16)
    a = b + 10 + rng.normal(0, 1, 16)
    better = condition("A vs B", units, a, b, rule=Rule(0.0), a_label="A", b_label="B")
    assert better.outcome == evidence.HOLDS
    assert _claim(better).verdict == evidence.REPRODUCED
    worse = condition("B vs A", units, b, a, rule=Rule(0.0), a_label="B", b_label="A")
    assert worse.outcome == evidence.FAILS
    assert _claim(worse).verdict == evidence.NOT_REPRODUCED
    assert _claim(better, worse).verdict == evidence.PARTLY
    assert re.search(r"A vs B: \+(9|10)\.\d\d \[\d+\.\d\d, \d+\.\d\d\], n = 16 \(holds\)", _claim(better).ours())


def test_a_constructed_inconclusive_case_names_the_n_that_would_decide_it():
    units = [f"photo{i}" for i in range(8)]
    rng = np.random.default_rng(2)
    b = rng.uniform(0, 50, 8)
    a = b + 0.5 + rng.normal(0, 3, 8)                  # small effect, noisy
    undecided = condition("A vs B", units, a, b, rule=Rule(0.0), a_label="A", b_label="B")
    assert undecided.outcome == evidence.UNDECIDED
    claim = _claim(undecided)
    assert claim.verdict == evidence.INCONCLUSIVE
    assert claim.n_to_decide is not None and claim.n_to_decide > 8
    assert f"≈ {claim.n_to_decide} units would decide it" in claim.decision()


def test_one_unit_never_decides_unless_the_measure_is_exact():
    one = condition("one photo", ["p"], [5.0], [1.0], rule=Rule(0.0))
    assert one.outcome == evidence.UNDECIDED
    exact = condition("identity", ["p"], [5.0], [1.0], rule=Rule(0.0), exact=True)
    assert exact.outcome == evidence.HOLDS


def test_below_rules_and_seed_intervals():
    seeds = ["0", "1", "2", "3", "4"]
    faster = condition("time ratio", seeds, [0.5, 0.4, 0.6, 0.5, 0.45], rule=Rule(1.0, "below"),
                       interval="t", statistic="mean")
    assert faster.outcome == evidence.HOLDS and faster.interval.method == "t over seeds"


def test_verdict_vocabulary_is_exactly_five_and_decide_follows_the_table():
    assert evidence.VERDICTS == ("reproduced", "partly reproduced", "not reproduced",
                                 "inconclusive at this scale", "not testable here")
    H, F, U = evidence.HOLDS, evidence.FAILS, evidence.UNDECIDED
    assert evidence.decide([H, H]) == evidence.REPRODUCED
    assert evidence.decide([H, F]) == evidence.PARTLY
    assert evidence.decide([H, F, U]) == evidence.PARTLY
    assert evidence.decide([F, U]) == evidence.NOT_REPRODUCED
    assert evidence.decide([H, U]) == evidence.INCONCLUSIVE
    assert evidence.decide([]) == evidence.NOT_TESTABLE
    with pytest.raises(ValueError):
        evidence.decide(["maybe"])


def test_untestable_claims_and_malformed_claims():
    claim = _claim(untestable="needs ImageNet validation labels")
    assert claim.verdict == evidence.NOT_TESTABLE and claim.ours() == "needs ImageNet validation labels"
    with pytest.raises(ValueError, match="not both"):
        _claim()
    c = condition("x", ["a", "b"], [1, 2], [0, 1], rule=Rule(0.0))
    with pytest.raises(ValueError, match="share a label"):
        _claim(c, c)
    with pytest.raises(ValueError, match="appears twice"):
        condition("x", ["a", "a"], [1, 2], [0, 1], rule=Rule(0.0))
    with pytest.raises(ValueError, match="pair them by unit"):
        condition("x", ["a", "b"], [1, 2, 3], [0, 1], rule=Rule(0.0))


def test_frames_carry_every_unit_both_sides():
    c = condition("A vs B", ["p1", "p2", "p3"], [3.0, 4.0, 5.0], [1.0, 1.0, 2.0], rule=Rule(0.0),
                  a_label="A", b_label="B")
    claim = _claim(c)
    rows = evidence.claims_frame([claim])
    assert rows.loc[0, "verdict"] == claim.verdict and rows.loc[0, "n"] == "3"
    conditions = evidence.conditions_frame([claim])
    assert conditions.loc[0, "estimate"] == pytest.approx(8 / 3)
    units = evidence.evidence_frame([claim])
    assert len(units) == 6 and set(units["side"]) == {"A", "B"}
