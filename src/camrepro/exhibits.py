"""What a chapter page shows, each with where it came from: tables and figures with a provenance line, the
CSV behind each one, and the box that says how to rerun the chapter.

A chapter notebook wraps its results once::

    show = exhibits.Exhibits(chapter, chapter.run(params, device), profile=profile)
    results = show.results            # the same results; every unit a table function reads is noted
    show.table(tables.comparison(results))
    show.figure(fig, data=scores)     # the DataFrame the figure was drawn from

Every :meth:`Exhibits.table` / :meth:`Exhibits.figure` call displays the object, writes the CSV behind it
(atomically) and displays a line naming the compute units read since the previous exhibit, each with its cache
key and the commit it was computed at (a figure drawn from the table just shown, with no unit read in between,
names that table's units), and a link to the CSV. Published tables quoted from a paper go through
:meth:`Exhibits.published`, whose line names the paper's table instead of a unit.

Where the CSVs go: the book's runner (:mod:`camrepro.notebooks`) sets ``$CAMREPRO_EXHIBITS`` to
``book/chapters/data/<chapter>/``, which the HTML build copies next to the page, so the links are relative and
work in a downloaded copy of the book. A notebook executed by hand writes them under
``data/results/exhibits/<chapter>/`` and links them by absolute path.
"""

from __future__ import annotations

import html
import os
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from camrepro import provenance
from camrepro.experiments.chapter import Chapter, Results

ENVIRONMENT_VARIABLE = "CAMREPRO_EXHIBITS"
PROVENANCE_CLASS = "camrepro-provenance"
RERUN_CLASS = "camrepro-rerun"
PROFILES = ("smoke", "book", "paper")
RERUN_FOLDER = "_build/rerun"


class TrackedResults(Results):
    """A chapter's :class:`Results` that notes the name of every unit read, until :meth:`take_read` is
    called."""

    def __init__(self, results: Mapping[str, object]):
        super().__init__(results)  # type: ignore[arg-type]
        self._read: list[str] = []

    def __getitem__(self, name: str):
        result = super().__getitem__(name)
        if name not in self._read:
            self._read.append(name)
        return result

    def table(self, name: str, prefix: str = "") -> pd.DataFrame:
        for unit in self:
            if unit.startswith(prefix) and name in super().__getitem__(unit).tables:
                self[unit]  # noqa: B018 -- reading it notes it
        return super().table(name, prefix)

    def take_read(self) -> list[str]:
        """The units read since the last call, in the order they were first read."""
        read, self._read = self._read, []
        return read


def rerun_commands(name: str) -> dict[str, str]:
    """profile → the shell command, run from the repository root, that executes chapter ``name``'s notebook at
    that profile with papermill (the paper profile on a GPU)."""
    commands = {}
    for profile in PROFILES:
        out = f"{RERUN_FOLDER}/{name}-{profile}.ipynb"
        words = ["papermill", f"notebooks/{name}.ipynb", out, "-f", f"notebooks/params/{profile}.yaml"]
        if profile == "paper":
            words += ["-p", "device", "cuda"]
        commands[profile] = f"mkdir -p {RERUN_FOLDER} && " + shlex.join(words)
    return commands


def rerun_box_html(name: str) -> str:
    """The "rerun this chapter" box: the papermill command of each profile and the executed notebook."""
    rows = "".join(f"<dt><code>{p}</code></dt><dd><pre>{html.escape(c)}</pre></dd>"
                   for p, c in rerun_commands(name).items())
    return (f'<div class="admonition tip {RERUN_CLASS}"><p class="admonition-title">Rerun this chapter</p>'
            "<p>From the repository root, in the environment of <code>make env</code> "
            "(<code>.venv/bin</code> on the path). <code>smoke</code> proves the pipeline in a minute or two, "
            "<code>book</code> is this book's scale, <code>paper</code> the papers' protocols (a GPU and the "
            "data and weights that data/README.md lists). <code>-p NAME VALUE</code> overrides a parameter.</p>"
            f"<dl>{rows}</dl>"
            f'<p>The executed notebook of this page: <a href="{html.escape(name)}.ipynb" download>'
            f"{html.escape(name)}.ipynb</a>.</p></div>")


def _commit(manifest: Mapping[str, object]) -> str:
    git = manifest.get("git") or {}
    commit = git.get("commit") if isinstance(git, Mapping) else None
    if not commit:
        return "no git commit"
    return str(commit)[:10] + (" (uncommitted changes)" if git.get("dirty") else "")


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        keep_index = not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None
        frame.to_csv(tmp, index=keep_index)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _as_frame(obj: object, what: str) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        return obj
    if isinstance(obj, pd.Series):
        return obj.to_frame()
    data = getattr(obj, "data", None)  # a pandas Styler
    if isinstance(data, pd.DataFrame):
        return data
    raise TypeError(f"{what} must be a pandas DataFrame, Series or Styler, got {type(obj).__name__}")


class Exhibits:
    """The tables and figures of one chapter page, numbered in order, each with its provenance line.

    Paper: none (the book's own plumbing). Cost: one CSV write per exhibit.
    Example: ``show = Exhibits(chapter, chapter.run(params, device), profile="smoke")``.
    """

    def __init__(self, chapter: Chapter, results: Mapping[str, object], *, profile: str,
                 folder: Path | str | None = None):
        if not isinstance(chapter, Chapter):
            raise TypeError(f"chapter must be a Chapter from the registry, got {type(chapter).__name__}")
        self.chapter = chapter
        self.profile = profile
        self.results = TrackedResults(results)
        env = os.environ.get(ENVIRONMENT_VARIABLE)
        self.relative_links = folder is None and bool(env)
        if folder is None:
            folder = env or provenance.repository_root() / "data" / "results" / "exhibits" / chapter.name
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("*.csv"):  # an older run's exhibits must not pass for this run's
            stale.unlink()
        self.count = 0
        self._last_units: list[str] = []

    # ---------------------------------------------------------------------------------------------- showing

    def rerun_box(self) -> None:
        from IPython.display import HTML, display

        display(HTML(rerun_box_html(self.chapter.name)))

    def table(self, obj: object, *, data: pd.DataFrame | None = None) -> None:
        """Display ``obj`` (DataFrame or Styler) and its provenance line; ``data``: the CSV's content, when it
        is not the displayed frame itself."""
        from IPython.display import display

        frame = data if data is not None else _as_frame(obj, "a table")
        display(obj)
        self._line("table", frame, self.results.take_read())

    def figure(self, fig: object, *, data: pd.DataFrame) -> None:
        """Display the matplotlib figure ``fig`` (and close it) and its provenance line; ``data``: the
        DataFrame the figure was drawn from, written as its CSV."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        frame = _as_frame(data, "a figure's data")
        display(fig)
        plt.close(fig)  # type: ignore[arg-type]
        self._line("figure", frame, self.results.take_read())

    def published(self, obj: object, source: str) -> None:
        """Display a table quoted from a paper, with a line naming ``source`` instead of a compute unit."""
        from IPython.display import display

        frame = _as_frame(obj, "a published table")
        display(obj)
        self._line("table", frame, [], source=source)

    # ------------------------------------------------------------------------------------------ provenance

    def provenance_html(self, kind: str, units: list[str], link: str, source: str | None = None) -> str:
        """The provenance line of exhibit number :attr:`count` (already incremented)."""
        label = f"{kind.capitalize()} {self.count}"
        if source is not None:
            origin = f"published figures: {html.escape(source)}, as quoted in the reference folder"
        elif units:
            parts = []
            for name in units:
                manifest = self.results._results[name].manifest  # noqa: SLF001 -- not a read to note
                parts.append(f"<code>{html.escape(name)}</code> (key <code>{html.escape(str(manifest.get('key')))}"
                             f"</code>, commit <code>{html.escape(_commit(manifest))}</code>)")
            origin = f"compute unit{'s' if len(units) > 1 else ''} " + ", ".join(parts)
        else:
            origin = "the chapter's parameters only (no compute unit read)"
        return (f'<p class="{PROVENANCE_CLASS}"><small>{label} of chapter <code>{self.chapter.name}</code>, '
                f"profile <code>{html.escape(self.profile)}</code>: {origin}. "
                f'<a class="camrepro-csv" href="{html.escape(link)}" download>CSV</a></small></p>')

    def _line(self, kind: str, frame: pd.DataFrame, units: list[str], source: str | None = None) -> None:
        from IPython.display import HTML, display

        self.count += 1
        if source is None:
            # a figure drawn from the table shown just before it reads no unit of its own
            units = units or self._last_units
            self._last_units = units
        path = self.folder / f"{kind}-{self.count:02d}.csv"
        _atomic_csv(frame, path)
        link = f"data/{self.chapter.name}/{path.name}" if self.relative_links else path.resolve().as_uri()
        display(HTML(self.provenance_html(kind, units, link, source)))
