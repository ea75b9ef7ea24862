"""The reproducibility report: every chapter's claims, grouped by paper, with their evidence and verdicts.

Each chapter of :mod:`camrepro.experiments.registry` returns its claims as :class:`camrepro.evidence.Claim`
objects, decided on its cached results. The report shows per paper a summary sentence, a table (the claim,
the published figure with its source, ours — effect, 95 % interval and n per condition — the verdict and the
rule) and a forest plot of every condition's effect and interval against its rule's threshold. A claim
concerns one of :data:`PAPERS`; the cross-paper benchmark's claims appear under the paper they concern. A
paper with no claim and no chapter in the book gets a sentence saying so, never a number.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from camrepro import evidence
from camrepro.evidence import Claim


@dataclass(frozen=True)
class Paper:
    name: str
    chapter: str
    citation: str


PAPERS: tuple[Paper, ...] = (
    Paper("LFI-CAM", "lficam", "Lee, Park, Oh and Kwak, ICCV 2021"),
    Paper("LIFT-CAM", "liftcam", "Jung and Oh, ICCV 2021"),
    Paper("A-FMI", "afmi", "Zhang et al., arXiv:2104.05527, 2021"),
    Paper("Opti-CAM", "opticam", "Zhang, Torres, Sicre, Avrithis and Ayache, CVIU 248, 2024"),
)
PAPER_NAMES = tuple(p.name for p in PAPERS)
OUTCOME_COLOURS = {evidence.HOLDS: "#1b7837", evidence.FAILS: "#b2182b", evidence.UNDECIDED: "#737373"}


def validate_claims(claims: object, chapter: str) -> list[Claim]:
    """One chapter's claims: a list of :class:`Claim` of known papers, labelled with ``chapter``."""
    if not isinstance(claims, (list, tuple)):
        raise TypeError(f"the claims of chapter {chapter!r} must be a list of Claim, got {type(claims).__name__}")
    for claim in claims:
        if not isinstance(claim, Claim):
            raise TypeError(f"chapter {chapter!r} returned a {type(claim).__name__} among its claims")
        if claim.paper not in PAPER_NAMES:
            raise ValueError(f"claim {claim.key!r} of chapter {chapter!r} names unknown paper {claim.paper!r}; "
                             f"expected one of {list(PAPER_NAMES)}")
        if claim.chapter != chapter:
            raise ValueError(f"claim {claim.key!r} is labelled with chapter {claim.chapter!r}, not {chapter!r}")
    return list(claims)


def collect_claims(profile_params: Mapping[str, object], chapters: Iterable[str],
                   device: str = "cpu") -> list[Claim]:
    """Every claim of the given chapters at one profile, in chapter order (read from the chapters' cache;
    a chapter whose results are not cached yet is computed on ``device``)."""
    from camrepro.experiments import registry

    out: list[Claim] = []
    for name in chapters:
        section = profile_params.get(name)
        if not isinstance(section, Mapping):
            raise ValueError(f"profile {profile_params.get('profile')!r} has no '{name}:' section")
        chapter = registry.get(name)
        out.extend(validate_claims(chapter.claims(chapter.params(overrides=section), device), name))
    return out


def verdict_summary(claims: Sequence[Claim]) -> str:
    """``"3 claims: 2 reproduced, 1 inconclusive at this scale."``: the count and each verdict's count, in the
    order of :data:`camrepro.evidence.VERDICTS`."""
    if not claims:
        return "No claim assessed."
    verdicts = [c.verdict for c in claims]
    parts = ", ".join(f"{verdicts.count(v)} {v}" for v in evidence.VERDICTS if v in verdicts)
    return f"{len(claims)} {'claim' if len(claims) == 1 else 'claims'}: {parts}."


def claims_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """Claims as a chapter page or the report shows them: the claim, the published figure and its source,
    ours (effect [95 % interval], n, per condition), the verdict (with the n that would decide an
    inconclusive one) and the rule."""
    frame = evidence.claims_frame(list(claims))
    return frame.loc[:, ["claim", "published", "source", "ours", "n", "decision", "rule"]].rename(
        columns={"decision": "verdict"})


def _ours_html(claim: Claim) -> str:
    if claim.untestable:
        return html.escape(claim.untestable)
    items = "".join(
        f'<li class="outcome-{c.outcome}">{html.escape(c.label)}: '
        f"<code>{html.escape(c.interval.format(claim.digits))}</code> ({c.outcome})</li>"
        for c in claim.conditions)
    return f"<ul>{items}</ul>"


def paper_section_html(paper: Paper, claims: Sequence[Claim], in_book: bool) -> str:
    """The HTML of one paper's section: a summary sentence and the table of its claims.

    ``claims``: every chapter's claims; the ones of ``paper`` are shown whichever chapter tested them.
    ``in_book``: whether the paper's own chapter is part of this build; if it is, the paper must have claims.
    """
    rows = [c for c in claims if c.paper == paper.name]
    chapter = html.escape(paper.chapter)
    if not rows:
        if in_book:
            raise ValueError(f"the {paper.chapter} chapter is in the book but no chapter reports a claim of "
                             f"{paper.name}")
        return (f'<p class="report-missing">The {chapter} chapter is not part of this build, so no claim of '
                f"{html.escape(paper.name)} is assessed here.</p>")
    # four columns, so that a 1280-pixel page shows them unclipped: the rule and the chapter go under the claim
    head = "".join(f"<th>{h}</th>" for h in ("claim (rule; chapter)", "published",
                                            "ours: effect [95 % interval], n", "verdict"))
    body = "".join(
        "<tr>"
        f'<td style="min-width:14em">{html.escape(c.text)}<br><small><em>Rule:</em> {html.escape(c.rule)} '
        f"<em>Chapter:</em> {html.escape(c.chapter)}</small></td>"
        f'<td style="min-width:10em">{html.escape(c.published)}<br><small>{html.escape(c.source)}</small></td>'
        f'<td style="min-width:18em"><small>{_ours_html(c)}</small></td>'
        f'<td class="verdict" style="min-width:8em">{html.escape(c.decision())}</td>'
        "</tr>" for c in rows)
    note = "" if in_book else (f'<p class="report-partial">The {chapter} chapter is not part of this build; '
                               "the claims below were tested by other chapters.</p>\n")
    return (f'{note}<p class="report-summary">{html.escape(verdict_summary(rows))}</p>\n'
            f'<table class="report-claims"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def forest_plot_html(claims: Sequence[Claim], title: str = "") -> str:
    """:func:`forest_plot` as an ``<img>`` with the PNG inline, so the report page can paste it from the report
    notebook (and a downloaded copy of the book needs no separate image file)."""
    import base64
    import io

    import matplotlib.pyplot as plt

    figure = forest_plot(claims, title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    alt = html.escape(f"forest plot of the {title or 'claims'}: effects and 95 % intervals against thresholds")
    return f'<img class="report-forest" alt="{alt}" src="data:image/png;base64,{data}" style="max-width:100%">'


def forest_plot(claims: Sequence[Claim], title: str = ""):
    """A forest plot: one panel per claim, one row per condition — its effect and 95 % interval, coloured by
    outcome, against the rule's threshold (dashed). Each panel has its own axis, since claims measure
    different things. Claims without conditions (not testable here) are listed, without a panel."""
    import matplotlib.pyplot as plt

    testable = [c for c in claims if c.conditions]
    heights = [max(1.0, 0.32 * len(c.conditions) + 0.6) for c in testable] or [0.8]
    fig, axes = plt.subplots(len(heights), 1, figsize=(8.5, sum(heights) + 0.4),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    if not testable:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "no claim of this paper could be measured here", ha="center", va="center")
    for ax, claim in zip(axes[:, 0], testable):
        conditions = list(claim.conditions)
        y = np.arange(len(conditions))[::-1]
        for yi, c in zip(y, conditions):
            iv = c.interval
            colour = OUTCOME_COLOURS[c.outcome]
            low = iv.low if np.isfinite(iv.low) else iv.estimate
            high = iv.high if np.isfinite(iv.high) else iv.estimate
            ax.plot([low, high], [yi, yi], color=colour, lw=2)
            ax.plot(iv.estimate, yi, "o", color=colour, ms=4)
            ax.axvline(c.rule.threshold, color="black", ls="--", lw=0.8)
        ax.set_yticks(y, [f"{c.label} (n = {c.n})" for c in conditions], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"{claim.key}: {claim.verdict}", fontsize=8, loc="left")
        ax.set_ylim(-0.7, len(conditions) - 0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
