"""The hand-written pages, the bibliography and CITATION.cff agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIB = (ROOT / "book" / "references.bib").read_text()
PAPERS = ("lee2021lficam", "jung2021liftcam", "zhang2021afmi", "zhang2024opticam")


def bib_entries(text: str) -> dict[str, str]:
    """``{key: entry text}`` of a BibTeX text (an entry runs from its ``@type{key,`` to the next entry)."""
    starts = [m for m in re.finditer(r"^@\w+\{([^,\s]+),", text, re.MULTILINE)]
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return {m[1]: text[m.start():end].strip() for m, end in zip(starts, ends, strict=True)}


def test_bib_entries_parser():
    text = "% c\n@misc{a,\n  title = {A}\n}\n\n@article{b,\n  x = {y}\n}\n"
    assert bib_entries(text) == {"a": "@misc{a,\n  title = {A}\n}", "b": "@article{b,\n  x = {y}\n}"}


def test_every_citation_has_an_entry():
    keys = set(bib_entries(BIB))
    cited = set()
    for page in (ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", page.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited, "the pages cite nothing"
    assert cited <= keys, f"cited without an entry in references.bib: {sorted(cited - keys)}"
    required = {"fukui2019abn", "wang2020scorecam", "selvaraju2017gradcam", "chattopadhay2018gradcampp",
                "fu2020xgradcam", "jiang2021layercam", "desai2020ablationcam", "poppi2021fakecam",
                "sundararajan2017ig", "shrikumar2017deeplift", "petsiuk2018rise", *PAPERS}
    assert required <= keys, f"references.bib lacks {sorted(required - keys)}"


def test_cite_page_quotes_the_bibliography_verbatim():
    page = (ROOT / "book" / "cite.md").read_text()
    quoted = {}
    for block in re.findall(r"```bibtex\n(.*?)```", page, re.DOTALL):
        quoted.update(bib_entries(block))
    entries = bib_entries(BIB)
    for key in PAPERS:
        assert quoted.get(key) == entries[key], f"cite.md's {key} differs from references.bib"
    assert "camrepro" in quoted


def test_citation_cff_names_the_four_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["message"] and cff["title"] and cff["authors"]
    titles = {r["title"] for r in cff["references"]}
    bib_titles = {re.sub(r"[{}]", "", re.search(r"title\s*=\s*\{(.*)\},?\n", bib_entries(BIB)[k])[1])
                  for k in PAPERS}
    assert titles == bib_titles
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)[1]
    assert str(cff["version"]) == version
