"""camrepro.book: the table of contents of a build and the checks made before Sphinx runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook, new_output

from camrepro import book
from camrepro.book import BookBuildError
from camrepro.notebooks import BookLayout

TOC = {
    "format": "jb-book",
    "root": "book/intro",
    "parts": [
        {"caption": "Use", "chapters": [{"file": "book/api"}]},
        {"caption": "Chapters",
         "chapters": [{"file": "book/chapters/alpha"}, {"file": "book/chapters/beta"}]},
        {"caption": "Only absent", "chapters": [{"file": "book/chapters/gamma"}]},
        {"caption": "Results", "chapters": [
            {"file": "book/report", "sections": [{"file": "book/chapters/report"}]},
            {"file": "book/chapters/colophon"}]},
    ],
}


def test_filter_toc_drops_absent_chapters_and_emptied_parts():
    filtered = book.filter_toc(TOC, {"beta", "colophon"})
    assert filtered == {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "Use", "chapters": [{"file": "book/api"}]},
            {"caption": "Chapters", "chapters": [{"file": "book/chapters/beta"}]},
            {"caption": "Results", "chapters": [{"file": "book/report"}, {"file": "book/chapters/colophon"}]},
        ],
    }
    assert TOC["parts"][1]["chapters"][0] == {"file": "book/chapters/alpha"}  # the input is left alone


def test_filter_toc_refuses_to_drop_the_root():
    with pytest.raises(ValueError, match="root page"):
        book.filter_toc({"root": "book/chapters/alpha"}, set())


# ------------------------------------------------------------------------------------------- check_executed

def executed(profile: str, start: str, end: str | None, outputs: list | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell('profile = "smoke"\ndevice = "cpu"', outputs=[])
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell("x = 1", outputs=outputs or [])])
    nb.metadata["papermill"] = {"parameters": {"profile": profile}, "start_time": start, "end_time": end,
                                "exception": None}
    return nb


def make_book(tmp_path: Path, executed_nbs: dict[str, nbformat.NotebookNode]) -> BookLayout:
    layout = BookLayout.at(tmp_path)
    layout.templates.mkdir(parents=True)
    layout.executed.mkdir(parents=True)
    layout.toc.write_text(yaml.safe_dump(TOC))
    past = 1_000_000_000  # templates older than every executed copy
    for name in ("alpha", "beta", "report", "colophon"):
        nbformat.write(new_notebook(), layout.template(name))
        os.utime(layout.template(name), (past, past))
    for name, nb in executed_nbs.items():
        nbformat.write(nb, layout.executed_copy(name))
    return layout


GOOD = {
    "alpha": executed("smoke", "2026-01-01T00:00:00", "2026-01-01T00:01:00"),
    "beta": executed("smoke", "2026-01-01T00:01:00", "2026-01-01T00:02:00"),
    "report": executed("smoke", "2026-01-01T00:02:00", "2026-01-01T00:02:30"),
    "colophon": executed("smoke", "2026-01-01T00:02:30", "2026-01-01T00:03:00"),
}


def test_check_executed_accepts_a_consistent_book(tmp_path):
    assert book.check_executed(make_book(tmp_path, GOOD)) == ["alpha", "beta", "report", "colophon"]


@pytest.mark.parametrize("change, message", [
    ({"beta": None}, "beta: not executed"),
    ({"beta": executed("smoke", "2026-01-01T00:01:00", None)}, "beta: .* is not a finished papermill run"),
    ({"beta": executed("book", "2026-01-01T00:01:00", "2026-01-01T00:02:00")}, "mix profiles"),
    ({"beta": executed("smoke", "2026-01-01T00:01:00", "2026-01-01T00:02:00",
                       [new_output("error", ename="KeyError", evalue="'k'", traceback=[])])},
     r"beta: cell 1 \(x = 1\): raised KeyError: 'k'"),
    ({"beta": executed("smoke", "2026-01-01T00:05:00", "2026-01-01T00:06:00")},
     "report: ran before the last chapter finished"),
])
def test_check_executed_refuses_an_inconsistent_book(tmp_path, change, message):
    nbs = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(BookBuildError, match=message):
        book.check_executed(make_book(tmp_path, nbs))


def test_check_executed_refuses_a_copy_older_than_its_template(tmp_path):
    layout = make_book(tmp_path, GOOD)
    os.utime(layout.template("alpha"), None)  # the template was edited just now
    old = 1_000_000_500
    os.utime(layout.executed_copy("alpha"), (old, old))
    with pytest.raises(BookBuildError, match="alpha: the template changed after"):
        book.check_executed(layout)


def test_write_build_toc_and_command(tmp_path):
    layout = make_book(tmp_path, GOOD)
    path = book.write_build_toc(layout, ["alpha", "report", "colophon"])
    assert path == tmp_path / "_build" / "_toc.yml"
    written = yaml.safe_load(path.read_text())
    assert [c["file"] for c in written["parts"][1]["chapters"]] == ["book/chapters/alpha"]
    command = book.jupyter_book_command(layout, path)
    assert command[0] == sys.executable
    assert command[3:] == ["build", str(tmp_path), "--toc", str(path), "--builder", "html",
                           "-W", "--keep-going", "--all"]


def test_copy_downloads_puts_notebooks_and_csvs_next_to_the_pages(tmp_path):
    layout = make_book(tmp_path, GOOD)
    csvs = layout.exhibits("alpha")
    csvs.mkdir(parents=True)
    (csvs / "table-01.csv").write_text("x\n1\n")
    html = tmp_path / "_build" / "html"
    stale = html / "book" / "chapters" / "data" / "alpha" / "table-09.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("old\n")
    copied = book.copy_downloads(layout, ["alpha", "beta"], html)
    pages = html / "book" / "chapters"
    assert (pages / "alpha.ipynb").is_file() and (pages / "beta.ipynb").is_file()
    assert (pages / "data" / "alpha" / "table-01.csv").read_text() == "x\n1\n"
    assert not stale.exists(), "a CSV of an older build outlived the page that linked it"
    assert len(copied) == 3
