"""camrepro.report: collecting the chapters' claims and the report's sections."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest

from camrepro import report

ROWS = [
    {"paper": "Opti-CAM", "claim": "AG ranks Fake-CAM last", "published": 0.0, "ours": 0.4,
     "verdict": "reproduced", "source": "Table 1"},
    {"paper": "Opti-CAM", "claim": "Opti-CAM has the best AG", "published": 36.6, "ours": 21.0,
     "verdict": "partly reproduced", "source": "Table 1"},
    {"paper": "Opti-CAM", "claim": "fewer iterations suffice", "published": None, "ours": 0.9,
     "verdict": "reproduced", "source": "Fig. 5"},
]


def fake_chapter(monkeypatch, chapter, rows=None, *, claims=True):
    module = types.ModuleType(f"camrepro.experiments.{chapter}")
    if claims:
        module.claims = lambda params: pd.DataFrame(rows if rows is not None else ROWS).assign(
            claim=lambda d: d["claim"] + f" (n={params['n']})")
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_validate_claims_orders_columns_and_rejects_bad_tables():
    shuffled = pd.DataFrame(ROWS)[["verdict", "ours", "source", "claim", "published", "paper"]]
    assert list(report.validate_claims(shuffled, "opticam").columns) == list(report.CLAIM_COLUMNS)
    with pytest.raises(TypeError, match="must return a pandas DataFrame, got list"):
        report.validate_claims(ROWS, "opticam")
    with pytest.raises(ValueError, match="has columns"):
        report.validate_claims(pd.DataFrame(ROWS).drop(columns="source"), "opticam")
    with pytest.raises(ValueError, match=r"unknown papers \['OptiCAM'\]"):
        report.validate_claims(pd.DataFrame(ROWS).assign(paper="OptiCAM"), "opticam")
    with pytest.raises(ValueError, match="1 rows with an empty 'verdict'"):
        report.validate_claims(pd.DataFrame(ROWS).assign(verdict=["a", " ", "b"]), "opticam")


def test_collect_claims_passes_each_chapter_its_section(monkeypatch):
    fake_chapter(monkeypatch, "opticam")
    profile = {"profile": "smoke", "device": "cpu", "opticam": {"n": 7}, "zzz_not_a_chapter": {}}
    claims = report.collect_claims(profile, ["opticam", "zzz_not_a_chapter"])
    assert list(claims.columns) == [*report.CLAIM_COLUMNS, "chapter"]
    assert list(claims["claim"]) == ["AG ranks Fake-CAM last (n=7)", "Opti-CAM has the best AG (n=7)",
                                     "fewer iterations suffice (n=7)"]
    assert set(claims["chapter"]) == {"opticam"}
    with pytest.raises(ValueError, match="no 'afmi:' section"):
        report.collect_claims(profile, ["afmi"])


def test_a_paper_chapter_must_have_claims(monkeypatch):
    fake_chapter(monkeypatch, "liftcam", claims=False)
    with pytest.raises(AttributeError, match="camrepro.experiments.liftcam has no claims"):
        report.chapter_claims("liftcam", {})
    fake_chapter(monkeypatch, "zzz_other", claims=False)
    assert report.chapter_claims("zzz_other", {}) is None


def test_collect_claims_of_nothing_is_an_empty_table():
    assert report.collect_claims({"profile": "smoke"}, []).empty


def test_claims_may_take_a_device_carry_their_chapter_or_be_empty(monkeypatch):
    seen = []
    module = types.ModuleType("camrepro.experiments.zzz_bench")

    def claims(params, device="cpu"):
        seen.append(device)
        return pd.DataFrame(ROWS[:1]).assign(chapter="zzz_bench")

    module.claims = claims
    monkeypatch.setitem(sys.modules, module.__name__, module)
    table = report.collect_claims({"zzz_bench": {}}, ["zzz_bench"], device="cuda")
    assert seen == ["cuda"] and list(table["chapter"]) == ["zzz_bench"]
    module.claims = lambda params: pd.DataFrame(ROWS[:1]).assign(chapter="other")
    with pytest.raises(ValueError, match=r"labels its rows with chapters \['other'\]"):
        report.chapter_claims("zzz_bench", {})
    module.claims = lambda params: pd.DataFrame([])  # no claim at this scale: no columns at all
    assert report.chapter_claims("zzz_bench", {}).empty
    assert report.collect_claims({"zzz_bench": {}}, ["zzz_bench"]).empty


def test_verdict_summary_counts_most_frequent_first():
    assert report.verdict_summary(pd.DataFrame(ROWS)) == "3 claims: 2 reproduced, 1 partly reproduced."
    assert report.verdict_summary(pd.DataFrame(ROWS[1:2])) == "1 claim: 1 partly reproduced."
    assert report.verdict_summary(pd.DataFrame(columns=report.CLAIM_COLUMNS)) == "No claim assessed."


def test_paper_section_html():
    opticam = report.PAPERS[3]
    claims = pd.DataFrame(ROWS + [{**ROWS[0], "paper": "A-FMI", "claim": "<b>not this</b>"}])
    section = report.paper_section_html(opticam, claims, in_book=True)
    assert section.startswith('<p class="report-summary">3 claims: 2 reproduced, 1 partly reproduced.</p>')
    assert section.count("<tr") == 4  # header + three claims of Opti-CAM only
    assert "not this" not in section and "<td>—</td>" in section  # missing published figure shown as a dash
    missing = report.paper_section_html(report.PAPERS[0], claims, in_book=False)
    assert missing == ('<p class="report-missing">The lficam chapter is not part of this build, so no '
                       "claim of LFI-CAM is assessed here.</p>")
    with pytest.raises(ValueError, match="the liftcam chapter is in the book but no chapter reports a claim"):
        report.paper_section_html(report.PAPERS[1], claims, in_book=True)


def test_claims_tested_by_another_chapter_are_shown():
    claims = pd.DataFrame(ROWS[:1]).assign(chapter="benchmark")
    section = report.paper_section_html(report.PAPERS[3], claims, in_book=False)
    assert section.startswith('<p class="report-partial">The opticam chapter is not part of this build; the '
                              "claims below were tested by other chapters.</p>")
    assert "<td>benchmark</td>" in section and "1 claim: 1 reproduced." in section


def test_section_html_escapes_text():
    rows = pd.DataFrame([{**ROWS[0], "claim": "a < b & c"}])
    assert "a &lt; b &amp; c" in report.paper_section_html(report.PAPERS[3], rows, in_book=True)
