"""camrepro.report: collecting the chapters' claims, the report's sections and forest plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from camrepro import evidence, report
from camrepro.evidence import Claim, Rule, condition
from camrepro.experiments import chapter as chapter_module
from camrepro.experiments import registry
from camrepro.experiments.schema import Param, Schema

UNITS = [f"photo{i}" for i in range(12)]
RNG = np.random.default_rng(0)
BASE = RNG.uniform(0, 40, 12)


def make_claim(key, paper="Opti-CAM", chapter="opticam", effect=10.0, noise=1.0, text="Opti-CAM has the best AG"):
    a = BASE + effect + RNG.normal(0, noise, 12)
    return Claim(key=key, paper=paper, chapter=chapter, text=text, published="AG 27.3 vs 21.2",
                 source="Table 1", rule="mean paired AG difference > 0",
                 conditions=(condition("vs Grad-CAM", UNITS, a, BASE, rule=Rule(0.0), a_label="opti-cam",
                                       b_label="grad-cam"),))


def fake_chapter(monkeypatch, name, claims, paper="Opti-CAM"):
    schema = Schema(name, {"n": Param(1, int, minimum=0)})
    seen = []

    def claims_from(results, params):
        seen.append(params["n"])
        return claims

    fake = chapter_module.Chapter(name, name, schema, lambda p: [], claims_from, paper=paper)
    monkeypatch.setattr(registry, "get", lambda n: fake if n == name else pytest.fail(f"asked for {n}"))
    return seen


def test_collect_claims_passes_each_chapter_its_section(monkeypatch):
    seen = fake_chapter(monkeypatch, "opticam", [make_claim("best-ag")])
    claims = report.collect_claims({"profile": "smoke", "opticam": {"n": 7}}, ["opticam"])
    assert seen == [7] and [c.key for c in claims] == ["best-ag"]
    with pytest.raises(ValueError, match="no 'afmi:' section"):
        report.collect_claims({"profile": "smoke"}, ["afmi"])
    with pytest.raises(ValueError, match=r"unknown opticam parameter\(s\) \['m'\]"):
        report.collect_claims({"profile": "smoke", "opticam": {"m": 7}}, ["opticam"])


def test_claims_must_be_claims_of_known_papers_labelled_with_their_chapter():
    with pytest.raises(TypeError, match="must be a list of Claim"):
        report.validate_claims("x", "opticam")
    with pytest.raises(ValueError, match="unknown paper 'OptiCAM'"):
        report.validate_claims([make_claim("k", paper="OptiCAM")], "opticam")
    with pytest.raises(ValueError, match="labelled with chapter 'afmi'"):
        report.validate_claims([make_claim("k", chapter="afmi")], "opticam")


def test_verdict_summary_counts_in_the_vocabulary_order():
    decided, undecided = make_claim("a"), make_claim("b", effect=0.2, noise=4.0)
    assert undecided.verdict == evidence.INCONCLUSIVE
    assert report.verdict_summary([undecided, decided, make_claim("c")]) == \
        "3 claims: 2 reproduced, 1 inconclusive at this scale."
    assert report.verdict_summary([]) == "No claim assessed."


def test_paper_section_shows_effect_interval_n_verdict_and_rule():
    claims = [make_claim("best-ag"), make_claim("other", paper="A-FMI", chapter="afmi", text="<b>not this</b>")]
    section = report.paper_section_html(report.PAPERS[3], claims, in_book=True)
    assert section.startswith('<p class="report-summary">1 claim: 1 reproduced.</p>')
    assert "not this" not in section and section.count("<tr>") == 2       # header + one claim
    iv = claims[0].conditions[0].interval
    assert f"{iv.estimate:+.2f} [{iv.low:.2f}, {iv.high:.2f}], n = 12" in section
    assert "mean paired AG difference &gt; 0" in section
    missing = report.paper_section_html(report.PAPERS[0], claims, in_book=False)
    assert missing == ('<p class="report-missing">The lficam chapter is not part of this build, so no '
                       "claim of LFI-CAM is assessed here.</p>")
    with pytest.raises(ValueError, match="the liftcam chapter is in the book but no chapter reports a claim"):
        report.paper_section_html(report.PAPERS[1], claims, in_book=True)


def test_claims_tested_by_another_chapter_are_shown_and_text_is_escaped():
    claim = make_claim("x", chapter="benchmark", text="a < b & c")
    section = report.paper_section_html(report.PAPERS[3], [claim], in_book=False)
    assert section.startswith('<p class="report-partial">The opticam chapter is not part of this build')
    assert "<em>Chapter:</em> benchmark</small>" in section and "a &lt; b &amp; c" in section


def test_inconclusive_claims_say_what_n_would_decide_them_in_the_report():
    claim = make_claim("weak", effect=0.3, noise=5.0)
    section = report.paper_section_html(report.PAPERS[3], [claim], in_book=True)
    assert "inconclusive at this scale (≈" in section and "units would decide it)" in section


def test_forest_plot_has_a_panel_per_testable_claim_with_the_threshold():
    claims = [make_claim("a"), make_claim("b", effect=-10),
              Claim("c", "Opti-CAM", "opticam", "faster", "—", "—", "ratio < 1", untestable="needs a GPU")]
    figure = report.forest_plot(claims, title="Opti-CAM")
    axes = figure.get_axes()
    assert len(axes) == 2
    assert axes[0].get_title(loc="left") == "a: reproduced"
    assert axes[1].get_title(loc="left") == "b: not reproduced"
    assert any(line.get_linestyle() == "--" for line in axes[0].get_lines())
    empty = report.forest_plot(claims[2:])
    assert len(empty.get_axes()) == 1


def test_claims_table_for_a_chapter_page():
    table = report.claims_table([make_claim("a")])
    assert list(table.columns) == ["claim", "published", "source", "ours", "n", "verdict", "rule"]
    assert table.loc[0, "verdict"] == "reproduced" and table.loc[0, "n"] == "12"


def test_forest_plot_html_is_an_inline_png():
    page = report.forest_plot_html([make_claim("a")], title="Opti-CAM")
    assert page.startswith('<img class="report-forest" alt="forest plot of the Opti-CAM')
    assert 'src="data:image/png;base64,iVBOR' in page
