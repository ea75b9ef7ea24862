"""Render the executed notebooks into the HTML book with jupyter-book, refusing anything inconsistent.

``_toc.yml`` lists every chapter the book can have, in reading order. A chapter is built when its template
``notebooks/<name>.ipynb`` exists; the entries of absent chapters are dropped from a copy of the table of
contents written to ``_build/_toc.yml``, which is the one the build uses. Adding a chapter therefore means
adding its template, its ``_toc.yml`` entry and a section in every profile; nothing else.

Before Sphinx runs, every notebook to be rendered must exist, be complete (papermill recorded its end), carry
no error output, traceback or warning, share one profile with the others, be newer than its template, and the
back matter must have run after the last chapter. Sphinx then runs with every warning an error
(``-W --keep-going``) on a fresh environment (``--all``: an incremental build would not repeat the warnings of
pages it does not reread). Last, the executed notebooks and the CSVs behind their tables and figures are copied
next to the pages that link them (:func:`copy_downloads`).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import nbformat
import yaml

from camrepro.notebooks import BookLayout, book_notebooks, find_problems, read_toc

_CHAPTER_PREFIX = "book/chapters/"
_CONTENT_KEYS = ("parts", "chapters", "sections", "glob", "url")
BUILD_DIR = "_build"


class BookBuildError(RuntimeError):
    """The book cannot be built as it stands; the message says what to run or fix."""


def filter_toc(toc: Mapping[str, object], keep: set[str]) -> dict[str, object]:
    """A copy of ``toc`` without the ``book/chapters/<name>`` entries whose name is not in ``keep``.

    Parts, chapters or sections left empty are removed with them.
    """

    def kept(entry: Mapping[str, object]) -> bool:
        file = str(entry.get("file", "")).removesuffix(".ipynb")
        return not file.startswith(_CHAPTER_PREFIX) or file[len(_CHAPTER_PREFIX):] in keep

    def prune(items: list[object]) -> list[object]:
        out = []
        for item in items:
            if not isinstance(item, Mapping):
                out.append(item)
                continue
            if "file" in item and not kept(item):
                continue  # the entry goes, and its sections with it
            item = dict(item)
            for key in ("parts", "chapters", "sections"):
                if key in item:
                    item[key] = prune(list(item[key]))  # type: ignore[arg-type]
                    if not item[key]:
                        del item[key]
            if "file" not in item and not any(k in item for k in _CONTENT_KEYS):
                continue  # a part whose chapters all went
            out.append(item)
        return out

    result = copy.deepcopy(dict(toc))
    root = str(result.get("root", "")).removesuffix(".ipynb")
    if root.startswith(_CHAPTER_PREFIX) and root[len(_CHAPTER_PREFIX):] not in keep:
        raise ValueError(f"the root page {root!r} cannot be dropped from the table of contents")
    for key in ("parts", "chapters", "sections"):
        if key in result:
            result[key] = prune(list(result[key]))
    return result


def _papermill_meta(nb: nbformat.NotebookNode) -> Mapping[str, object]:
    return nb.get("metadata", {}).get("papermill", {})


def check_executed(layout: BookLayout) -> list[str]:
    """The notebooks to render, in execution order, after checking they form one consistent, clean book."""
    chapters, back = book_notebooks(layout)
    names = chapters + back
    if not names:
        raise BookBuildError(f"no chapter template under {layout.templates} is listed in {layout.toc.name}")
    problems: list[str] = []
    profiles: dict[str, str] = {}
    ends: dict[str, str] = {}
    starts: dict[str, str] = {}
    for name in names:
        path = layout.executed_copy(name)
        if not path.is_file():
            problems.append(f"{name}: not executed ({path} is missing)")
            continue
        nb = nbformat.read(path, as_version=4)
        meta = _papermill_meta(nb)
        if not meta.get("end_time"):
            problems.append(f"{name}: {path} is not a finished papermill run")
            continue
        found = find_problems(nb)
        if meta.get("exception"):
            found = found or ["papermill recorded an exception"]
        problems += [f"{name}: {p}" for p in found]
        if layout.template(name).stat().st_mtime > path.stat().st_mtime:
            problems.append(f"{name}: the template changed after {path} was executed")
        params = meta.get("parameters", {})
        profiles[name] = str(params.get("profile")) if isinstance(params, Mapping) else "None"
        ends[name], starts[name] = str(meta["end_time"]), str(meta.get("start_time", ""))
    if len(set(profiles.values())) > 1:
        problems.append(f"the executed notebooks mix profiles: {profiles}")
    last_chapter_end = max((ends[c] for c in chapters if c in ends), default="")
    for name in back:
        if name in starts and starts[name] < last_chapter_end:
            problems.append(f"{name}: ran before the last chapter finished; it summarises an older book")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise BookBuildError(f"the executed notebooks cannot be rendered:\n{listing}\nrun `make notebooks` "
                             "(python -m camrepro.cli notebooks --profile <profile>) first")
    return names


def write_build_toc(layout: BookLayout, names: list[str]) -> Path:
    """Write the table of contents of this build (``_build/_toc.yml``) and return its path."""
    toc = filter_toc(read_toc(layout), set(names))
    path = layout.root / BUILD_DIR / "_toc.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by camrepro.book from _toc.yml, without the chapters that have no template\n"
                    + yaml.safe_dump(toc, sort_keys=False))
    return path


def jupyter_book_command(layout: BookLayout, toc: Path) -> list[str]:
    """The jupyter-book call: HTML into ``_build/html``, every warning an error, fresh environment."""
    runner = "from jupyter_book.cli.main import main; main()"
    return [sys.executable, "-c", runner, "build", str(layout.root), "--toc", str(toc), "--builder", "html",
            "-W", "--keep-going", "--all"]


def build_html(root: Path | str | None = None) -> Path:
    """Check the executed notebooks, build the HTML book, and return ``_build/html``.

    Raises :class:`BookBuildError` when a notebook is missing, stale or failed, or when Sphinx reports any
    warning (its output, which names the page and line, is printed as the build runs).
    """
    layout = BookLayout.at(root)
    names = check_executed(layout)
    toc = write_build_toc(layout, names)
    completed = subprocess.run(jupyter_book_command(layout, toc), cwd=layout.root, check=False)
    if completed.returncode != 0:
        raise BookBuildError(f"jupyter-book failed (exit {completed.returncode}); every Sphinx warning is an "
                             "error here: see the WARNING lines above")
    html = layout.root / BUILD_DIR / "html"
    if not (html / "index.html").is_file():
        raise BookBuildError(f"jupyter-book succeeded but wrote no {html / 'index.html'}")
    copy_downloads(layout, names, html)
    return html


def copy_downloads(layout: BookLayout, names: list[str], html: Path) -> list[Path]:
    """Put what the chapter pages link for download next to them in ``html/book/chapters/``: each executed
    notebook (``<name>.ipynb``) and the CSVs behind its tables and figures (``data/<name>/*.csv``, written by
    :mod:`camrepro.exhibits`). Sphinx copies neither, since neither is a page. Returns the copied files."""
    pages = html / _CHAPTER_PREFIX
    copied = []
    for name in names:
        pages.mkdir(parents=True, exist_ok=True)
        copied.append(Path(shutil.copy2(layout.executed_copy(name), pages / f"{name}.ipynb")))
        source = layout.exhibits(name)
        target = pages / "data" / name
        if target.exists():
            shutil.rmtree(target)  # CSVs of an older build must not outlive the page that linked them
        if source.is_dir():
            target.mkdir(parents=True)
            for csv in sorted(source.glob("*.csv")):
                copied.append(Path(shutil.copy2(csv, target / csv.name)))
    return copied

