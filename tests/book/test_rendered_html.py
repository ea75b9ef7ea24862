"""The rendered book, as a browser shows it: run after the book is built (make html / make smoke).

Every chapter page shows at least one figure and one table, no error output, and none of papermill's
injected parameters; the report has a section for each of the four papers.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from camrepro import notebooks
from camrepro.notebooks import BookLayout

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = BookLayout.at(ROOT)
CHAPTERS, BACK_MATTER = notebooks.book_notebooks(LAYOUT)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_ERROR_LINE = re.compile(r"\b[A-Z]\w*(Error|Exception): ")
_WARNING_LINE = re.compile(r":\d+: [A-Z]\w*Warning: ")


class Page(HTMLParser):
    """What the checks need from a DOM: images, tables, class names, all text, and each cell output's text."""

    def __init__(self, dom: str) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.tables = 0
        self.classes: set[str] = set()
        self.text: list[str] = []
        self.outputs: list[list[str]] = []  # one list of text pieces per cell output block
        self.output_classes: list[set[str]] = []
        self._depth = 0
        self._output_depth: int | None = None
        self._skip = 0  # inside <script> / <style>
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        self.classes |= classes
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag == "table":
            self.tables += 1
        if tag in ("script", "style"):
            self._skip += 1
        if tag in _VOID:
            return
        self._depth += 1
        if self._output_depth is None and "cell_output" in classes:
            self._output_depth = self._depth
            self.outputs.append([])
            self.output_classes.append(set())
        if self._output_depth is not None:
            self.output_classes[-1] |= classes

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        if tag in _VOID:
            return
        if self._output_depth is not None and self._depth == self._output_depth:
            self._output_depth = None
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._output_depth is not None:
            self.outputs[-1].append(data)


def page_of(name: str) -> Path:
    return ROOT / "_build" / "html" / "book" / "chapters" / f"{name}.html"


def injected_source(name: str) -> str:
    nb = nbformat.read(LAYOUT.executed_copy(name), as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"book/chapters/{name}.ipynb: {len(cells)} injected-parameters cells, expected 1"
    return cells[0].source


def shown_images(page: Page, path: Path) -> list[str]:
    """The images that actually have content: non-empty data URIs, or files that exist and are not empty."""
    shown = []
    for src in page.images:
        if src.startswith("data:"):
            if len(src.split(",", 1)[-1]) > 16:
                shown.append(src[:40])
        elif src and "_static/" not in src and not src.startswith(("http:", "https:")):
            target = (path.parent / src.split("#")[0].split("?")[0]).resolve()
            if target.is_file() and target.stat().st_size > 0:
                shown.append(src)
    return shown


def check_clean(name: str, page: Page) -> None:
    assert "traceback" not in set().union(*page.output_classes), f"{name}: an error output is rendered"
    for pieces in page.outputs:
        text = "".join(pieces)
        assert "Traceback" not in text, f"{name}: an output shows a traceback: {text[:300]!r}"
        assert not _ERROR_LINE.search(text), f"{name}: an output shows an error: {text[:300]!r}"
        assert not _WARNING_LINE.search(text), f"{name}: an output shows a Python warning: {text[:300]!r}"
    assert "tag_injected-parameters" not in page.classes, f"{name}: the injected-parameters cell is rendered"
    source = injected_source(name).strip()
    assert source not in "".join(page.text), f"{name}: the injected parameters are visible on the page"


def test_parser_known_answer():
    dom = ('<html><body><p>intro</p><div class="cell_output"><div class="output stderr">'
           '<pre>a<br>b</pre></div><img src="data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAA"></div>'
           '<table></table>'
           '<script>Traceback</script><div class="cell tag_x">after</div></body></html>')
    page = Page(dom)
    assert page.tables == 1 and len(page.images) == 1
    assert ["".join(o) for o in page.outputs] == ["ab"]
    assert page.output_classes == [{"cell_output", "output", "stderr"}]
    assert "Traceback" not in "".join(page.text) and "tag_x" in page.classes


@pytest.mark.parametrize("name", CHAPTERS + ["colophon"])
def test_chapter_page_has_figure_table_and_no_errors(name, render):
    path = page_of(name)
    assert path.is_file(), f"{path} was not built"
    page = Page(render(path))
    assert shown_images(page, path), f"{name}: no rendered figure (img with data or an existing file)"
    assert page.tables >= 1, f"{name}: no table"
    check_clean(name, page)


def test_report_notebook_page_is_clean(render):
    check_clean("report", Page(render(page_of("report"))))


def test_report_has_a_section_per_paper(render):
    path = ROOT / "_build" / "html" / "book" / "report.html"
    dom = render(path)
    sections = re.split(r'<section[^>]*id="', dom)[1:]
    by_id = {s.split('"', 1)[0]: s for s in sections}
    for paper in ("lfi-cam", "lift-cam", "a-fmi", "opti-cam"):
        assert paper in by_id, f"report.html has no section {paper!r}; sections: {sorted(by_id)}"
        section = by_id[paper]
        assert "report-claims" in section or "report-missing" in section, f"report section {paper!r} is empty"
