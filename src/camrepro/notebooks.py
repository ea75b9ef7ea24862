"""Execute the book's notebooks with papermill, check what they printed, and record how long they took.

Layout (relative to the repository root, see :class:`BookLayout`):

- ``notebooks/<name>.ipynb``: papermill templates, outputs stripped;
- ``notebooks/params/<profile>.yaml``: ``profile``, ``device`` and one mapping per chapter;
- ``book/chapters/<name>.ipynb``: the executed copies that the book renders (git-ignored);
- ``_toc.yml``: the book's table of contents; the order of its ``book/chapters/*`` entries is the order in
  which chapters are executed (only those whose template exists);
- ``data/results/book-run.json``: the run record (profile, commit, versions, hardware, wall time per chapter).

Two kinds of notebooks: *chapters*, whose parameters cell declares ``profile``, ``device`` and a mapping
named after the chapter (``opticam = {}``), filled from the profile's section of the same name; and the
*back matter* (``report``, ``colophon``), which declare only ``profile`` and ``device`` and run after every
chapter run, since they summarise the chapters.

An executed notebook fails the run if any cell raised, or if any output stream shows a Python traceback or a
Python warning (the ``file:line: SomeWarning: message`` lines that :mod:`warnings` prints). Warnings count as
failures on purpose: the book is rendered with execution off, so a warning in an output would reach the reader
as unexplained noise, and most of them (deprecations, numerically suspect operations) signal something the
chapter should fix. A chapter that expects a warning filters it explicitly, with a comment saying why.
Progress bars and other stderr text are not failures.

In the executed copy both parameter cells (the template's defaults and papermill's injected values) are tagged
``remove-cell``, so the rendered page shows neither; chapters display the parameters they ran with themselves.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from camrepro import provenance

RECORD_SCHEMA_VERSION = 1
BACK_MATTER = ("report", "colophon")
INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"
HIDE_TAG = "remove-cell"
KERNEL = "python3"
# The kernel inherits the environment; the Makefile exports MPLBACKEND=Agg for scripts, which would stop
# figures from appearing in notebook outputs, so kernels get the inline backend explicitly.
KERNEL_ENVIRONMENT = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
_CHAPTER_PREFIX = "book/chapters/"

# cells papermill adds to the executed copy: the injected parameters and the markers around a failed cell
_PAPERMILL_TAGS = {INJECTED_TAG, "papermill-error-cell-tag"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TRACEBACK = "Traceback (most recent call last)"
# warnings.formatwarning writes "<file>:<line>: <Category>: <message>"
_WARNING_LINE = re.compile(
    r"^(?P<where>[^\n]*?):(?P<line>\d+): (?P<category>[A-Za-z_]\w*Warning): (?P<msg>.*)$", re.MULTILINE)


class NotebookExecutionError(RuntimeError):
    """A notebook raised, or printed a traceback or a warning; the message names the notebook and cells."""

    def __init__(self, notebook: str, problems: Sequence[str]) -> None:
        self.notebook = notebook
        self.problems = list(problems)
        details = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"notebook {notebook!r} failed:\n{details}")


@dataclass(frozen=True)
class BookLayout:
    """Where the templates, parameters, executed notebooks, table of contents and run record live."""

    root: Path

    @classmethod
    def at(cls, root: Path | str | None = None) -> BookLayout:
        return cls(Path(root).resolve() if root is not None else provenance.repository_root())

    @property
    def templates(self) -> Path:
        return self.root / "notebooks"

    @property
    def params(self) -> Path:
        return self.root / "notebooks" / "params"

    @property
    def executed(self) -> Path:
        return self.root / "book" / "chapters"

    @property
    def toc(self) -> Path:
        return self.root / "_toc.yml"

    @property
    def record(self) -> Path:
        return self.root / "data" / "results" / "book-run.json"

    def template(self, name: str) -> Path:
        return self.templates / f"{name}.ipynb"

    def executed_copy(self, name: str) -> Path:
        return self.executed / f"{name}.ipynb"

    def exhibits(self, name: str) -> Path:
        """The CSVs behind notebook ``name``'s tables and figures (see :mod:`camrepro.exhibits`); the HTML
        build copies ``book/chapters/data/`` next to the pages, so the pages link them relatively."""
        return self.executed / "data" / name


# ------------------------------------------------------------------------------------------ table of contents

def toc_files(toc: Mapping[str, object]) -> list[str]:
    """Every ``file`` entry of a jupyter-book table of contents, root first, in reading order."""
    if not isinstance(toc, Mapping) or "root" not in toc:
        raise ValueError("a table of contents must be a mapping with a 'root' entry")
    files = [str(toc["root"])]

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            if "file" in node:
                files.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for key in ("parts", "chapters", "sections"):
        if key in toc:
            walk(toc[key])
    return files


def read_toc(layout: BookLayout) -> dict[str, object]:
    if not layout.toc.is_file():
        raise FileNotFoundError(f"table of contents {layout.toc} not found")
    return yaml.safe_load(layout.toc.read_text())


def toc_notebooks(toc: Mapping[str, object]) -> list[str]:
    """Names of the executed notebooks the table of contents lists (``book/chapters/<name>``), in order."""
    names = []
    for entry in toc_files(toc):
        entry = entry.removesuffix(".ipynb")
        if entry.startswith(_CHAPTER_PREFIX):
            names.append(entry[len(_CHAPTER_PREFIX):])
    return names


def book_notebooks(layout: BookLayout) -> tuple[list[str], list[str]]:
    """``(chapters, back_matter)`` present in this checkout, each in execution order.

    A chapter is part of the book when its template exists and the table of contents lists it; a template the
    table of contents does not list is an error (it would be executed and never shown).
    """
    listed = toc_notebooks(read_toc(layout))
    templates = sorted(p.stem for p in layout.templates.glob("*.ipynb"))
    unlisted = [t for t in templates if t not in listed]
    if unlisted:
        raise ValueError(f"templates {unlisted} are not listed in {layout.toc.name} "
                         f"(add '- file: {_CHAPTER_PREFIX}<name>' entries for them)")
    chapters = [n for n in listed if n not in BACK_MATTER and n in templates]
    back = [n for n in BACK_MATTER if n in listed and n in templates]
    return chapters, back


# ------------------------------------------------------------------------------------------------ parameters

def available_profiles(layout: BookLayout) -> list[str]:
    return sorted(p.stem for p in layout.params.glob("*.yaml"))


def load_profile(profile: str, layout: BookLayout | None = None) -> dict[str, object]:
    """The parameters of one profile: ``notebooks/params/<profile>.yaml``, checked.

    The file must be a mapping whose ``profile`` equals its name and which has a ``device``.
    """
    layout = layout or BookLayout.at()
    if not isinstance(profile, str) or not profile:
        raise TypeError(f"profile must be a non-empty string, got {profile!r}")
    path = layout.params / f"{profile}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {profile!r}: no {path}; available: {available_profiles(layout)}")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(params).__name__}")
    if params.get("profile") != profile:
        raise ValueError(f"{path} declares profile {params.get('profile')!r}, expected {profile!r}")
    if not isinstance(params.get("device"), str):
        raise ValueError(f"{path} must set 'device' (for example 'cpu')")
    return params


def notebook_parameters(name: str, profile_params: Mapping[str, object], *,
                        device: str | None = None) -> dict[str, object]:
    """The parameters papermill injects into notebook ``name``.

    Chapters get ``profile``, ``device`` and their own section; the back matter gets ``profile`` and
    ``device``.
    ``device`` overrides the profile's device.
    """
    params: dict[str, object] = {"profile": profile_params["profile"],
                                 "device": device if device is not None else profile_params["device"]}
    if name in BACK_MATTER:
        return params
    section = profile_params.get(name)
    if not isinstance(section, Mapping):
        profile = profile_params["profile"]
        raise ValueError(f"profile {profile!r} has no '{name}:' section (a mapping of the {name} chapter's "
                         f"parameters); add one to notebooks/params/{profile}.yaml")
    params[name] = dict(section)
    return params


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The cell tagged ``parameters``; ValueError if there are several."""
    cells = [c for c in nb.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) > 1:
        raise ValueError(f"{len(cells)} cells are tagged '{PARAMETERS_TAG}'; papermill needs exactly one")
    return cells[0] if cells else None


def declared_parameters(nb: nbformat.NotebookNode) -> dict[str, object]:
    """Names assigned in the ``parameters`` cell, with their literal default (``None`` if not a literal)."""
    cell = parameters_cell(nb)
    if cell is None:
        raise ValueError(f"no cell is tagged '{PARAMETERS_TAG}'")
    if cell.cell_type != "code":
        raise ValueError(f"the '{PARAMETERS_TAG}' cell must be a code cell")
    tree = ast.parse(cell.source)
    out: dict[str, object] = {}
    for node in tree.body:
        targets: list[ast.expr]
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            literal = None
        for target in targets:
            if isinstance(target, ast.Name):
                out[target.id] = literal
    return out


def check_template(name: str, nb: nbformat.NotebookNode) -> None:
    """A template declares ``profile`` and ``device``, chapters also their own mapping; else ValueError."""
    declared = declared_parameters(nb)
    required = ["profile", "device"] + ([] if name in BACK_MATTER else [name])
    missing = [r for r in required if r not in declared]
    if missing:
        raise ValueError(f"template {name!r}: its parameters cell does not declare {missing}")
    if name not in BACK_MATTER and not isinstance(declared[name], dict):
        raise ValueError(f"template {name!r}: '{name}' must default to a dict literal (for example {{}})")


# ------------------------------------------------------------------------------------------ checking outputs

def _output_text(output: Mapping[str, object]) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return "".join(text) if isinstance(text, list) else str(text)
    data = output.get("data", {})
    if isinstance(data, Mapping) and "text/plain" in data:
        text = data["text/plain"]
        return "".join(text) if isinstance(text, list) else str(text)
    return ""


def find_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Every error output, printed traceback and Python warning of an executed notebook, one line each.

    Cells are numbered from 0 as in the template (the cells papermill adds are not counted). Plain stderr text
    (progress bars, logging) is not a problem.
    """
    problems = []
    index = -1
    for cell in nb.cells:
        if _PAPERMILL_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue  # papermill's own cells: numbering follows the template, where the reader will look
        index += 1
        if cell.cell_type != "code":
            continue
        where = f"cell {index} ({_first_line(cell.source)})"
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"{where}: raised {output.get('ename', 'Error')}: {output.get('evalue', '')}")
                continue
            text = _ANSI.sub("", _output_text(output))
            if _TRACEBACK in text:
                tail = text.strip().splitlines()[-1]
                problems.append(f"{where}: printed a traceback ending in {tail!r}")
            for match in _WARNING_LINE.finditer(text):
                origin = match["where"]
                # a warning raised by the cell's own code points at an anonymous ipykernel file: useless
                at = "" if "ipykernel_" in origin else f" (at {origin}:{match['line']})"
                problems.append(f"{where}: {match['category']}: {match['msg'].strip()}{at}")
    return problems


def _first_line(source: str, width: int = 60) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    line = lines[0] if lines else "empty"
    return line if len(line) <= width else line[: width - 1] + "…"


def tag_injected_cell(nb: nbformat.NotebookNode) -> int:
    """Add ``remove-cell`` to the parameter cells, so the book shows neither; returns the cells tagged.

    Both go: the cell papermill injected (tagged ``injected-parameters``) is machinery, and the template's
    ``parameters`` cell holds defaults that the injected values overrode, so showing it would state a
    profile the page was not computed with. Chapters display the parameters they used in a cell of their own.
    """
    count = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if (INJECTED_TAG in tags or PARAMETERS_TAG in tags) and HIDE_TAG not in tags:
            tags.append(HIDE_TAG)
            count += 1
    return count


# ------------------------------------------------------------------------------------------------- run record

def _sibling_temporary(path: Path, suffix: str) -> Path:
    """A hidden, unique name next to ``path`` (same file system, so ``os.replace`` is atomic); the file is
    created by whoever writes it, with the usual permissions."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the hidden temporaries (``.<name>.<pid>.<id>.running.ipynb`` / ``.tmp``) that a killed run left in
    ``folder``: those whose writing process no longer exists. A live run's files are kept. Returns the removed
    paths. (A run that ends normally or by an exception removes its own; only SIGKILL or a power cut leaves
    them.)"""
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.*.*"):
        parts = path.name.split(".")
        # ['', stem, pid, id, 'running', 'ipynb'] or ['', stem, pid, id, 'tmp'] (the stem may hold dots)
        suffix = parts[-2:] == ["running", "ipynb"] or parts[-1] == "tmp"
        pid = parts[-4] if parts[-2:] == ["running", "ipynb"] else parts[-3] if len(parts) >= 5 else ""
        if not path.is_file() or not suffix or not pid.isdigit() or _process_is_alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _write_json_atomic(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling_temporary(path, ".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_run_record(path: Path | str | None = None) -> dict[str, object]:
    """The run record written by :func:`run_all` (``data/results/book-run.json`` by default)."""
    path = Path(path) if path is not None else BookLayout.at().record
    if not path.is_file():
        raise FileNotFoundError(f"no run record at {path}: run `python -m camrepro.cli notebooks` first")
    return json.loads(path.read_text())


def new_record(profile: str, device: str, previous: Mapping[str, object] | None) -> dict[str, object]:
    """A run record for this run; keeps the chapters of ``previous`` when it was made at the same profile and
    device (a partial rerun updates the record), and drops them otherwise (they describe another book)."""
    chapters: dict[str, object] = {}
    if previous and previous.get("profile") == profile and previous.get("device") == device:
        chapters = dict(previous.get("chapters", {}))  # type: ignore[arg-type]
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "profile": profile,
        "device": device,
        "git": provenance.git_state(),
        "versions": provenance.package_versions(),
        "hardware": provenance.hardware(device),
        "updated": provenance.now(),
        "chapters": chapters,
    }


# ---------------------------------------------------------------------------------------------------- running

@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def execute(name: str, parameters: Mapping[str, object], layout: BookLayout) -> list[str]:
    """Execute one template into ``book/chapters/<name>.ipynb``; returns the problems found (empty if clean).

    papermill writes into a hidden temporary file next to the target; the target is replaced only once the
    run has ended, so an interrupted run never leaves a half-executed notebook that looks finished. A run that
    failed still replaces the target, so that the failure is visible and the book refuses to render it.
    """
    import papermill  # imported here: starting the CLI for other commands should not pay for it

    source, target = layout.template(name), layout.executed_copy(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling_temporary(target, ".running.ipynb")
    try:
        env = dict(KERNEL_ENVIRONMENT, CAMREPRO_ROOT=str(layout.root),
                   CAMREPRO_EXHIBITS=str(layout.exhibits(name)))
        raised: str | None = None
        with _environment(env):
            try:
                papermill.execute_notebook(
                    str(source), str(tmp), parameters=dict(parameters), kernel_name=KERNEL, language="python",
                    cwd=str(layout.root), progress_bar=False, log_output=False,
                    request_save_on_cell_execute=True,
                )
            except papermill.PapermillExecutionError:
                pass  # the error is in the saved notebook, where find_problems reports it with its cell
            except Exception as exc:  # the kernel died or could not start: no cell holds the reason
                raised = f"{type(exc).__name__}: {exc}"
        try:
            nb = nbformat.read(tmp, as_version=4)
        except (OSError, ValueError):  # papermill stopped before writing anything (nbformat: NotJSONError)
            tmp.unlink(missing_ok=True)
            target.unlink(missing_ok=True)  # an older copy must not pass for this run's result
            return [f"execution stopped before any cell ran: {raised or 'papermill wrote no notebook'}"]
        tag_injected_cell(nb)
        if raised:  # no cell shows the failure, so mark the notebook itself: the book build refuses it
            nb.metadata.setdefault("papermill", {})["exception"] = True
        nbformat.write(nb, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    problems = find_problems(nb)
    if raised:
        problems.append(f"execution stopped: {raised}")
    return problems


def run_all(profile: str, chapters: Sequence[str] | None = None, *, device: str | None = None,
            root: Path | str | None = None) -> dict[str, object]:
    """Execute the book's notebooks at ``profile``; returns the run record (also written to disk).

    ``chapters`` selects some notebooks (default: every chapter whose template exists, in table-of-contents
    order). The back matter (report, colophon) runs after any chapter, since it summarises the chapters.
    ``device`` overrides the profile's device. Raises :class:`NotebookExecutionError` at the first notebook
    that fails, after recording it; ValueError for an unknown profile or chapter or a malformed template.
    """
    layout = BookLayout.at(root)
    profile_params = load_profile(profile, layout)
    all_chapters, back = book_notebooks(layout)
    known = all_chapters + back
    if chapters is None:
        selected = list(known)
    else:
        if isinstance(chapters, str):
            raise TypeError("chapters must be a sequence of names, not a string")
        unknown = [c for c in chapters if c not in known]
        if unknown:
            raise ValueError(f"unknown chapters {unknown}; this checkout has {known}")
        selected = [c for c in all_chapters if c in chapters]
        reran_a_chapter = bool(selected)
        selected += [b for b in back if b in chapters or reran_a_chapter]
    if not selected:
        raise ValueError(f"nothing to execute: no template under {layout.templates} is listed in the book")

    plan = {}
    for name in selected:  # check every template and parameter section before spending time on any
        check_template(name, nbformat.read(layout.template(name), as_version=4))
        plan[name] = notebook_parameters(name, profile_params, device=device)

    remove_stale_temporaries(layout.executed)
    remove_stale_temporaries(layout.record.parent)
    effective_device = device if device is not None else str(profile_params["device"])
    previous = json.loads(layout.record.read_text()) if layout.record.is_file() else None
    record = new_record(profile, effective_device, previous)
    chapters_record: dict[str, object] = record["chapters"]  # type: ignore[assignment]
    if chapters is None:  # the whole book: count the map store's computations afresh (see the colophon)
        from camrepro.experiments.kit import maps

        maps.start_build()
    from camrepro.experiments import registry

    for index, (name, parameters) in enumerate(plan.items(), start=1):
        budget = registry.get(name).budgets.get(profile) if name in registry.CHAPTERS else None
        print(f"[{index}/{len(plan)}] {name}: started at profile {profile!r}"
              + (f" (budget {budget:.0f} s)" if budget else ""), flush=True)
        started, load_at_start, t0 = provenance.now(), provenance.machine_load()["load_1min"], time.perf_counter()
        problems = execute(name, parameters, layout)
        wall = time.perf_counter() - t0
        over = f", over its budget of {budget:.0f} s" if budget and wall > budget else ""
        print(f"[{index}/{len(plan)}] {name}: {'failed' if problems else 'done'} in {wall:.0f} s{over}",
              flush=True)
        chapters_record.pop(name, None)  # re-insert so the record lists chapters in the order they last ran
        chapters_record[name] = {
            "status": "failed" if problems else "ok",
            "started": started,
            "finished": provenance.now(),
            "wall_seconds": round(wall, 2),
            "budget_seconds": budget,
            # the 1-minute load average as the notebook started and ended: its wall time depends on it
            "load_at_start": load_at_start,
            "load_at_end": provenance.machine_load()["load_1min"],
            "parameters": parameters,
        }
        record["updated"] = provenance.now()
        _write_json_atomic(layout.record, record)
        if problems:
            raise NotebookExecutionError(name, problems)
    return record
