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


# ------------------------------------------------------------------------------------- offline and readable

HTML_ROOT = ROOT / "_build" / "html"
_LOADED = re.compile(r"<(script|img|iframe|source|link)\b[^>]*?\b(src|href)=[\"']([^\"']+)[\"']", re.IGNORECASE)
_CSS_URL = re.compile(r"(?:@import\s+|url\()\s*[\"']?((?:https?:)?//[^\"')\s]+)", re.IGNORECASE)
_RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]")


def book_pages() -> list[Path]:
    """Every page of the built book (not Sphinx's search and index pages)."""
    pages = sorted(HTML_ROOT.rglob("*.html")) if HTML_ROOT.is_dir() else []
    # index.html is a bare redirect to the root page, which is checked itself
    return [p for p in pages if p.name not in ("search.html", "genindex.html") and not p.name.startswith(".")
            and "_static" not in p.parts and "<head" in p.read_text()]


class Prose(HTMLParser):
    """The text a reader reads as prose: everything but scripts, styles, code and MathJax's own output."""

    _SKIP = {"script", "style", "pre", "code", "mjx-container", "textarea"}

    def __init__(self, dom: str) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._skip = 0
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data):
        if not self._skip:
            self.pieces.append(data)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def test_the_book_has_pages():
    names = {p.relative_to(HTML_ROOT).as_posix() for p in book_pages()}
    assert "book/report.html" in names and {f"book/chapters/{c}.html" for c in CHAPTERS} <= names


@pytest.mark.parametrize("page", book_pages(), ids=lambda p: p.relative_to(HTML_ROOT).as_posix())
def test_page_refers_to_no_network_resource(page):
    """No script, stylesheet, image, frame or font of a page comes from the network (a link a reader clicks
    may point anywhere)."""
    external = [f"<{tag} {attr}={url}>" for tag, attr, url in _LOADED.findall(page.read_text())
                if url.startswith(("http:", "https:", "//")) and not (tag.lower() == "link" and "canonical" in url)]
    assert not external, f"{page.name} loads from the network: {external}"


def test_stylesheets_and_scripts_import_nothing_from_the_network():
    static = HTML_ROOT / "_static"
    bad = {p.relative_to(static).as_posix(): _CSS_URL.findall(p.read_text(errors="replace"))[:3]
           for p in sorted(static.rglob("*.css"))}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"stylesheets that fetch from the network: {bad}"
    assert (static / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not vendored into _static/mathjax"
    assert (static / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir(), "MathJax's fonts are missing"


@pytest.mark.parametrize("page", book_pages(), ids=lambda p: p.relative_to(HTML_ROOT).as_posix())
def test_page_renders_offline_with_typeset_math(page, rendered):
    """Loaded by Chromium with no network: no resource fails to load, and the math is typeset by the vendored
    MathJax (its output elements exist, and no raw TeX delimiter is left in the prose)."""
    shown = rendered(page)
    assert not shown.probe["failed"], f"{page.name}: resources failed to load: {shown.probe['failed']}"
    assert not shown.probe["fonts_failed"], f"{page.name}: fonts failed to load: {shown.probe['fonts_failed']}"
    source = page.read_text()
    if 'class="math' in source:
        assert shown.probe["mathjax"], f"{page.name} has math but MathJax did not load"
        assert shown.probe["typeset"] > 0, f"{page.name}: MathJax produced no output element"
        leftover = _RAW_TEX.findall(Prose(shown.dom).text)
        assert not leftover, f"{page.name}: raw TeX left on the page: {leftover[:5]}"


def test_pages_with_math_exist():
    """The math check above is not vacuous: the chapters and the API page carry math."""
    with_math = [p for p in book_pages() if 'class="math' in p.read_text()]
    assert page_of("opticam") in with_math and len(with_math) >= 3, [p.name for p in with_math]


@pytest.mark.parametrize("name", CHAPTERS + list(BACK_MATTER))
def test_no_code_cell_is_expanded_by_default(name, rendered):
    probe = rendered(page_of(name)).probe
    assert probe["code_cells"] > 0, f"{name}: no code cell on the page (nothing to collapse, or not rendered)"
    assert probe["visible_code"] == 0, (f"{name}: {probe['visible_code']} of {probe['code_cells']} code cells "
                                        "are shown expanded")
    assert "Show code cell source" in rendered(page_of(name)).dom, f"{name}: no toggle to show the code"


def test_report_table_fits_a_1280_pixel_page(rendered):
    probe = rendered(ROOT / "_build" / "html" / "book" / "report.html").probe
    assert probe["width"] <= 1280 and probe["tables"], f"no claims table measured: {probe}"
    for table in probe["tables"]:
        assert table["clipped"] == 0, f"a claims table has {table['clipped']} clipped cells: {table}"
        assert table["narrow"] == 0, f"a claims table has {table['narrow']} cells under 40 px wide: {table}"


# ---------------------------------------------------------------------------------- provenance and rerun

def _is_exhibit(output) -> bool:
    data = output.get("data", {})
    return "image/png" in data or "<table" in str(data.get("text/html", ""))


def _is_provenance(output) -> bool:
    return "camrepro-provenance" in str(output.get("data", {}).get("text/html", ""))


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_table_and_figure_has_a_provenance_line(name):
    """In the executed notebook, each table or figure output is followed by its provenance line before the
    next table or figure."""
    nb = nbformat.read(LAYOUT.executed_copy(name), as_version=4)
    exhibits = lines = 0
    for index, cell in enumerate(nb.cells):
        pending = False
        for output in cell.get("outputs", []):
            if _is_provenance(output):
                assert pending, f"{name}: cell {index} has a provenance line without a table or figure before it"
                pending, lines = False, lines + 1
            elif _is_exhibit(output):
                assert not pending, f"{name}: cell {index} shows a table or figure without a provenance line"
                pending, exhibits = True, exhibits + 1
        assert not pending, f"{name}: cell {index} ends with a table or figure without a provenance line"
    assert exhibits >= 2 and lines == exhibits, (name, exhibits, lines)


def _links(dom: str, cls: str) -> list[str]:
    return re.findall(rf'<a class="{cls}" href="([^"]+)"', dom)


@pytest.mark.parametrize("name", CHAPTERS)
def test_csv_links_and_the_executed_notebook_resolve_in_the_site(name, render):
    path = page_of(name)
    dom = render(path)
    csvs = _links(dom, "camrepro-csv")
    assert len(csvs) == dom.count('class="camrepro-provenance"') >= 2, f"{name}: CSV links {len(csvs)}"
    for href in csvs:
        assert not href.startswith(("file:", "http:", "https:", "/")), f"{name}: CSV link {href!r} is not relative"
        target = (path.parent / href).resolve()
        assert target.is_file() and HTML_ROOT.resolve() in target.parents, f"{name}: {href} is not in the site"
        assert target.read_text().strip(), f"{name}: {href} is empty (not even a header)"
    assert "camrepro-rerun" in dom and "Rerun this chapter" in dom, f"{name}: no rerun box"
    notebook = re.search(rf'href="({name}\.ipynb)" download', dom)
    assert notebook and (path.parent / notebook.group(1)).is_file(), f"{name}: executed notebook not downloadable"
    for profile in ("smoke", "book", "paper"):
        assert f"notebooks/params/{profile}.yaml" in dom, f"{name}: the rerun box lacks the {profile} command"


def test_cite_page_gives_the_compendium_with_the_commit_of_the_build(render):
    record = notebooks.read_run_record(LAYOUT.record)
    dom = render(ROOT / "_build" / "html" / "book" / "cite.html")
    assert "camrepro-citation" in dom, "cite.html does not show the compendium's citation"
    commit = (record.get("git") or {}).get("commit")
    assert commit and commit in dom, f"cite.html does not name the commit of the build ({commit})"
    for doi in ("10.1016/j.cviu.2024.104101", "10.48550/arXiv.2105.00937", "10.48550/arXiv.2102.05228",
                "10.48550/arXiv.2104.05527"):
        assert doi in dom, f"cite.html lacks the DOI {doi}"


def test_colophon_states_the_machine_its_load_and_the_time_per_chapter(render):
    text = "".join(Page(render(page_of("colophon"))).text)
    assert "build machine" in text and "machine load" in text and "load at start" in text
    for name in CHAPTERS:
        assert name in text, f"the colophon does not list the wall time of {name}"
