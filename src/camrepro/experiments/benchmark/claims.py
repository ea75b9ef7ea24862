"""The benchmark chapter's claims: the Opti-CAM paper's Fake-CAM argument, re-tested against every method of
the package on both networks, photo by photo.

The Opti-CAM paper (Zhang et al., CVIU 2024, Sec. 4 and Table 1, after Poppi et al. 2021) shows the flaw of
Average Drop with Fake-CAM — a map that is 1 everywhere but one pixel, so it masks nothing: it scores a
near-perfect AD; Average Gain, which only rewards a map for raising the class probability, gives it almost
nothing. Both halves are tested here as paired per-photo differences, each method against Fake-CAM on the
photos both explained (a method run on fewer photos is compared on those; n says how many).

The model-randomisation sanity check is no paper's claim: it is a table of the chapter
(:func:`camrepro.experiments.benchmark.tables.randomisation_summary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from camrepro import evidence, methods
from camrepro.evidence import Claim, Rule
from camrepro.experiments.benchmark import tables
from camrepro.experiments.chapter import Results
from camrepro.experiments.kit.metric_tables import paired
from camrepro.reference import published

CHAPTER = "benchmark"
PAPER = "Opti-CAM"
FAKE = "fake-cam"
SOURCE = "Opti-CAM (Zhang et al., CVIU 248, 2024), Table 1 — opticam_table1_cnn.csv"

LOWER = Rule(0.0, "below", text="95 % paired-bootstrap interval of mean(Fake-CAM − method) per photo "
                                "below 0, for every method on both networks")


def _published(measure: str, others: Sequence[str] | None) -> str:
    """The paper's Fake-CAM figure beside the lowest of the other methods (or of ``others``), per network."""
    ref = published("opticam_table1_cnn")
    parts = []
    for model, g in ref.groupby("model", sort=False):
        fake = g[g.method == "Fake-CAM"][measure].iloc[0]
        rest = g[g.method != "Fake-CAM"]
        if others is not None:
            rest = rest[rest.method.isin(others)]
        lowest = rest.loc[rest[measure].idxmin()]
        group = "other methods" if others is None else "CAMs"
        parts.append(f"{model}: Fake-CAM {measure} {fake:g}; lowest of the {group} {lowest[measure]:g} "
                     f"({lowest.method})")
    return "; ".join(parts)


def _conditions(faithfulness, measure: str, others: Sequence[str]) -> list[evidence.Condition]:
    out = []
    for model, rows in faithfulness.groupby("model", sort=False):
        for method in others:
            pair = paired(rows, measure, FAKE, method)
            if pair.empty:
                continue
            out.append(evidence.condition(
                f"{model}: {FAKE} − {method}", pair.image, pair[FAKE], pair[method], rule=LOWER,
                measure=f"{measure} (%)", a_label=FAKE, b_label=method))
    return out


def _cams(names: Sequence[str]) -> list[str]:
    return [n for n in names if n != FAKE and methods.get(n).needs_layer]


def claims_from(results: Results, params: Mapping[str, object]) -> list[Claim]:
    """The two Fake-CAM claims, decided on the per-photo AD and AG of every method."""
    faithfulness = tables.faithfulness(results)
    listed = list(params["methods"])
    every_other = [n for n in listed if n != FAKE]
    cams = _cams(listed)
    missing = "" if FAKE in listed and every_other else (
        f"the profile's methods {listed} need {FAKE!r} and at least one other method")
    common = dict(paper=PAPER, chapter=CHAPTER, source=SOURCE)

    def claim(key: str, text: str, published_text: str, rule: str, measure: str, others: list[str]) -> Claim:
        conditions = [] if missing else _conditions(faithfulness, measure, others)
        reason = missing or ("" if conditions else f"no method was run on the photos {FAKE} explained")
        return Claim(key, text=text, published=published_text, rule=rule, conditions=tuple(conditions),
                     untestable=reason, **common)

    return [
        claim("benchmark-fake-cam-average-drop",
              "Average Drop is flawed: Fake-CAM, a map that masks a single pixel, scores a lower (better) "
              "Average Drop than every real saliency map",
              _published("AD", None),
              "Per photo, AD(Fake-CAM) − AD(method) for every other method of the chapter (CAMs and pixel "
              "attributions) on each network, on the photos both explained; reproduced when every 95 % "
              "paired-bootstrap interval of the mean lies below 0.",
              "AD", every_other),
        claim("benchmark-fake-cam-average-gain",
              "Average Gain fixes the flaw: Fake-CAM scores a lower Average Gain than every class activation "
              "map",
              _published("AG", ["Grad-CAM", "Grad-CAM++", "Score-CAM", "Ablation-CAM", "XGrad-CAM",
                                "Layer-CAM", "HiRes-CAM"]),
              "Per photo, AG(Fake-CAM) − AG(method) for every class activation map of the chapter (the "
              "methods that explain a layer; the pixel attributions are left out, as the paper's own Table 1 "
              "has a pixel attribution, GradientShap, below Fake-CAM on AG) on each network, on the photos "
              "both explained; reproduced when every 95 % paired-bootstrap interval of the mean lies "
              "below 0.",
              "AG", cams),
    ]
