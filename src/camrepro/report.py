"""The reproducibility report: every chapter's claims, grouped by paper, with their verdicts.

Each chapter's experiment module ``camrepro.experiments.<chapter>`` exposes ``claims(params[, device])``
(``params``: the chapter's section of the profile, the mapping its notebook receives; ``device`` is passed
when the function accepts it) returning a DataFrame with the columns :data:`CLAIM_COLUMNS`: the paper (one of
:data:`PAPERS`' names), the claim in words, the published figure (quoted from the paper, labelled with its
``source``), ours, and the verdict; a ``chapter`` column, if present, must name the chapter. The four
papers' chapters must provide it; other chapters (the cross-paper benchmark) may, and their claims appear
under the paper they concern. A paper with no claim and no chapter in the book gets a sentence saying so,
never a number.
"""

from __future__ import annotations

import html
import importlib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

CLAIM_COLUMNS = ("paper", "claim", "published", "ours", "verdict", "source")


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


def validate_claims(claims: object, chapter: str) -> pd.DataFrame:
    """Check one chapter's claims table and return it with the columns in the standard order.

    A DataFrame with :data:`CLAIM_COLUMNS` (and optionally ``chapter``, naming this chapter), known papers,
    and non-empty claim and verdict texts. A table with no rows (even with no columns) means no claim.
    """
    if not isinstance(claims, pd.DataFrame):
        raise TypeError(f"claims() of chapter {chapter!r} must return a pandas DataFrame, "
                        f"got {type(claims).__name__}")
    if len(claims) == 0:
        return pd.DataFrame(columns=list(CLAIM_COLUMNS))
    columns = set(claims.columns) - {"chapter"}
    if columns != set(CLAIM_COLUMNS):
        raise ValueError(f"claims() of chapter {chapter!r} has columns {list(claims.columns)}, "
                         f"expected {list(CLAIM_COLUMNS)} (and optionally 'chapter')")
    if "chapter" in claims.columns and set(claims["chapter"]) != {chapter}:
        raise ValueError(f"claims() of chapter {chapter!r} labels its rows with chapters "
                         f"{sorted(set(map(str, claims['chapter'])))}")
    unknown = sorted(set(claims["paper"]) - set(PAPER_NAMES))
    if unknown:
        raise ValueError(f"claims() of chapter {chapter!r} names unknown papers {unknown}; "
                         f"expected some of {list(PAPER_NAMES)}")
    for column in ("claim", "verdict"):
        blank = claims[column].isna() | (claims[column].astype(str).str.strip() == "")
        if blank.any():
            raise ValueError(f"claims() of chapter {chapter!r} has {int(blank.sum())} rows with an empty "
                             f"{column!r}")
    return claims.loc[:, list(CLAIM_COLUMNS)].reset_index(drop=True)


def chapter_claims(chapter: str, params: Mapping[str, object], device: str = "cpu") -> pd.DataFrame | None:
    """The claims of one chapter, or None for a chapter that is not a paper's and has none."""
    is_paper_chapter = chapter in {p.chapter for p in PAPERS}
    module_name = f"camrepro.experiments.{chapter}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name or is_paper_chapter:
            raise
        return None
    claims = getattr(module, "claims", None)
    if claims is None:
        if is_paper_chapter:
            raise AttributeError(f"{module_name} has no claims(params): the report needs one for every "
                                 "paper's chapter in the book")
        return None
    accepts_device = "device" in inspect.signature(claims).parameters
    table = claims(dict(params), device=device) if accepts_device else claims(dict(params))
    return validate_claims(table, chapter)


def collect_claims(profile_params: Mapping[str, object], chapters: Iterable[str],
                   device: str = "cpu") -> pd.DataFrame:
    """Every claim of the given chapters at one profile, with a ``chapter`` column, in chapter order."""
    frames = []
    for chapter in chapters:
        section = profile_params.get(chapter)
        if not isinstance(section, Mapping):
            raise ValueError(f"profile {profile_params.get('profile')!r} has no '{chapter}:' section")
        claims = chapter_claims(chapter, section, device)
        if claims is not None and len(claims):
            frames.append(claims.assign(chapter=chapter))
    if not frames:
        return pd.DataFrame(columns=[*CLAIM_COLUMNS, "chapter"])
    return pd.concat(frames, ignore_index=True)


def verdict_summary(rows: pd.DataFrame) -> str:
    """``"3 claims: 2 reproduced, 1 not reproduced."``: the claim count and each verdict's count, most
    frequent first (ties in first-seen order)."""
    if len(rows) == 0:
        return "No claim assessed."
    counts = rows["verdict"].astype(str).value_counts(sort=False)
    order = sorted(range(len(counts)), key=lambda i: -counts.iloc[i])
    parts = ", ".join(f"{counts.iloc[i]} {counts.index[i]}" for i in order)
    noun = "claim" if len(rows) == 1 else "claims"
    return f"{len(rows)} {noun}: {parts}."


def paper_section_html(paper: Paper, claims: pd.DataFrame, in_book: bool) -> str:
    """The HTML of one paper's section of the report: a summary sentence and the table of its claims.

    ``claims``: every chapter's claims (:func:`collect_claims`); the rows of ``paper`` are shown whichever
    chapter tested them. ``in_book``: whether the paper's own chapter is part of this build; if it is, the
    paper must have claims, and if it is not, the section says so.
    """
    rows = claims[claims["paper"] == paper.name]
    chapter = html.escape(paper.chapter)
    if len(rows) == 0:
        if in_book:
            raise ValueError(f"the {paper.chapter} chapter is in the book but no chapter reports a claim of "
                             f"{paper.name}")
        return (f'<p class="report-missing">The {chapter} chapter is not part of this build, so no claim of '
                f"{html.escape(paper.name)} is assessed here.</p>")
    columns = ["claim", "published", "ours", "verdict", "source"] + (["chapter"] if "chapter" in rows else [])
    table = rows.loc[:, columns].to_html(index=False, escape=True, na_rep="—", classes="report-claims",
                                         border=0)
    note = "" if in_book else (f'<p class="report-partial">The {chapter} chapter is not part of this build; '
                               "the claims below were tested by other chapters.</p>\n")
    return f'{note}<p class="report-summary">{html.escape(verdict_summary(rows))}</p>\n{table}'


def claims_table(claims) -> pd.DataFrame:
    """A chapter's claims as the chapter page shows them: the claim, the published figure and its source,
    ours (effect [95 % interval], n, per condition), the verdict (with the n that would decide an
    inconclusive one) and the rule."""
    from camrepro.evidence import claims_frame

    frame = claims_frame(list(claims))
    return frame.loc[:, ["claim", "published", "source", "ours", "decision", "rule"]].rename(
        columns={"decision": "verdict"})
