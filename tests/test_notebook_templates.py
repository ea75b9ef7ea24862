"""The papermill templates under notebooks/ and the profiles under notebooks/params/ fit together."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from camrepro import notebooks
from camrepro.notebooks import BACK_MATTER, BookLayout

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = BookLayout.at(ROOT)
TEMPLATES = sorted(LAYOUT.templates.glob("*.ipynb"))
CHAPTERS = [p.stem for p in TEMPLATES if p.stem not in BACK_MATTER]
PROFILES = ("smoke", "book", "paper")


def test_there_are_templates_and_the_back_matter():
    names = {p.stem for p in TEMPLATES}
    assert set(BACK_MATTER) <= names
    assert CHAPTERS, "no chapter template under notebooks/"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_template_is_stripped_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has outputs (strip them)"
            assert cell.execution_count is None, f"{path.name}: cell {index} has an execution count"
    # one 'parameters' cell: profile, device (and the chapter's mapping)
    notebooks.check_template(path.stem, nb)
    declared = notebooks.declared_parameters(nb)
    assert declared["profile"] in PROFILES and isinstance(declared["device"], str)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_has_a_section_for_every_chapter(profile):
    params = notebooks.load_profile(profile, LAYOUT)
    missing = [c for c in CHAPTERS if not isinstance(params.get(c), dict)]
    assert not missing, f"notebooks/params/{profile}.yaml has no section for {missing}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_profiles_set_the_same_parameters(chapter):
    keys = {p: sorted(notebooks.load_profile(p, LAYOUT)[chapter]) for p in PROFILES}
    assert len({tuple(k) for k in keys.values()}) == 1, f"the '{chapter}:' sections differ: {keys}"


def test_every_template_is_in_the_table_of_contents():
    chapters, back = notebooks.book_notebooks(LAYOUT)  # raises for a template the book would not show
    assert sorted(chapters + back) == sorted(p.stem for p in TEMPLATES)
    assert back == list(BACK_MATTER)


@pytest.mark.parametrize("path", [p for p in TEMPLATES if p.stem not in BACK_MATTER], ids=lambda p: p.stem)
def test_chapter_notebooks_only_load_show_and_explain(path):
    """A chapter's notebook loads its chapter, shows its tables and figures and the prose: at most 12 code cells,
    no claim arithmetic and no verdict text of its own (verdicts come from camrepro.evidence)."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert len(code) <= 12, f"{path.name}: {len(code)} code cells (at most 12, the parameters cell included)"
    source = "\n".join(code)
    assert f'registry.get("{path.stem}")' in source, f"{path.name} must load its chapter from the registry"
    for verdict in ("reproduced", "inconclusive", "not testable"):
        assert verdict not in source, f"{path.name}: a code cell writes the verdict text {verdict!r}"
    for arithmetic in ("evidence.condition(", "bootstrap(", "t_interval("):
        assert arithmetic not in source, f"{path.name}: a code cell computes evidence ({arithmetic})"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_every_code_cell_is_collapsed_on_the_page(path):
    """A page reads as prose, tables and figures: every code cell but the parameters is tagged ``hide-input``
    (Jupyter Book shows a toggle to open it); the parameters cells are removed from the page by the runner."""
    nb = nbformat.read(path, as_version=4)
    open_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                  and not {"hide-input", "remove-input", "remove-cell", "parameters"} & set(c.metadata.get("tags", []))]
    assert not open_cells, f"{path.name}: code cells {open_cells} would be shown expanded (tag them hide-input)"
