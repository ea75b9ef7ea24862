"""camrepro.notebooks: table of contents, parameters, output checks, tagging, run record, and one real run."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from camrepro import notebooks
from camrepro.notebooks import BookLayout, NotebookExecutionError

TOC = {
    "format": "jb-book",
    "root": "book/intro",
    "parts": [
        {"caption": "A", "chapters": [{"file": "book/api"}]},
        {"caption": "B", "chapters": [{"file": "book/chapters/beta"}, {"file": "book/chapters/alpha.ipynb"}]},
        {"caption": "C", "chapters": [{"file": "book/report", "sections": [{"file": "book/chapters/report"}]},
                                      {"file": "book/chapters/colophon"}]},
    ],
}


def code(source: str, tags: list[str] | None = None, outputs: list | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(source, outputs=outputs or [])
    if tags:
        cell.metadata["tags"] = tags
    return cell


def template(name: str, extra: str = "", body: str = "x = 1") -> nbformat.NotebookNode:
    mapping = "" if name in notebooks.BACK_MATTER else f"\n{name} = {{}}"
    return new_notebook(cells=[new_markdown_cell(f"# {name}"),
                               code(f'profile = "smoke"\ndevice = "cpu"{mapping}{extra}', ["parameters"]),
                               code(body)])


def make_root(tmp_path: Path, bodies: dict[str, str], toc: dict | None = None) -> BookLayout:
    """A miniature repository: a table of contents, templates with the given bodies, and a smoke profile."""
    layout = BookLayout.at(tmp_path)
    layout.params.mkdir(parents=True)
    layout.toc.write_text(yaml.safe_dump(toc or {"format": "jb-book", "root": "book/intro", "chapters": [
        {"file": f"book/chapters/{name}"} for name in bodies]}))
    for name, body in bodies.items():
        nbformat.write(template(name, body=body), layout.template(name))
    profile = {"profile": "smoke", "device": "cpu"}
    profile.update({name: {"n": 3} for name in bodies if name not in notebooks.BACK_MATTER})
    (layout.params / "smoke.yaml").write_text(yaml.safe_dump(profile))
    return layout


# ----------------------------------------------------------------------------------------- table of contents

def test_toc_files_in_reading_order():
    assert notebooks.toc_files(TOC) == [
        "book/intro", "book/api", "book/chapters/beta", "book/chapters/alpha.ipynb", "book/report",
        "book/chapters/report", "book/chapters/colophon"]


def test_toc_notebooks_strips_prefix_and_suffix():
    assert notebooks.toc_notebooks(TOC) == ["beta", "alpha", "report", "colophon"]


def test_toc_without_root_is_rejected():
    with pytest.raises(ValueError, match="root"):
        notebooks.toc_files({"chapters": []})


def test_book_notebooks_keeps_toc_order_and_only_present_templates(tmp_path):
    layout = make_root(tmp_path, {"alpha": "x = 1", "colophon": "x = 1"}, toc=TOC)
    assert notebooks.book_notebooks(layout) == (["alpha"], ["colophon"])


def test_book_notebooks_rejects_a_template_missing_from_the_toc(tmp_path):
    layout = make_root(tmp_path, {"alpha": "x = 1", "gamma": "x = 1"}, toc=TOC)
    with pytest.raises(ValueError, match=r"\['gamma'\] are not listed"):
        notebooks.book_notebooks(layout)


# ------------------------------------------------------------------------------------------------ parameters

def test_load_profile_checks_name_and_device(tmp_path):
    layout = make_root(tmp_path, {"alpha": "x = 1"})
    assert notebooks.load_profile("smoke", layout) == {"profile": "smoke", "device": "cpu", "alpha": {"n": 3}}
    with pytest.raises(ValueError, match=r"unknown profile 'huge'.*available: \['smoke'\]"):
        notebooks.load_profile("huge", layout)
    (layout.params / "bad.yaml").write_text("profile: smoke\ndevice: cpu\n")
    with pytest.raises(ValueError, match="declares profile 'smoke', expected 'bad'"):
        notebooks.load_profile("bad", layout)
    (layout.params / "nodev.yaml").write_text("profile: nodev\n")
    with pytest.raises(ValueError, match="must set 'device'"):
        notebooks.load_profile("nodev", layout)
    with pytest.raises(TypeError):
        notebooks.load_profile(3, layout)  # type: ignore[arg-type]


def test_notebook_parameters_per_kind():
    profile = {"profile": "book", "device": "cpu", "opticam": {"n_images": 8}, "other": {"k": 1}}
    assert notebooks.notebook_parameters("opticam", profile) == {
        "profile": "book", "device": "cpu", "opticam": {"n_images": 8}}
    assert notebooks.notebook_parameters("opticam", profile, device="cuda")["device"] == "cuda"
    assert notebooks.notebook_parameters("report", profile) == {"profile": "book", "device": "cpu"}
    with pytest.raises(ValueError, match="no 'afmi:' section"):
        notebooks.notebook_parameters("afmi", profile)


def test_declared_parameters_reads_literals():
    nb = template("alpha", extra="\nsteps: int = 4\nscale = 2 * 3")
    assert notebooks.declared_parameters(nb) == {"profile": "smoke", "device": "cpu", "alpha": {}, "steps": 4,
                                                 "scale": None}


def test_check_template_names_what_is_missing():
    nb = new_notebook(cells=[code('profile = "smoke"', ["parameters"])])
    with pytest.raises(ValueError, match=r"does not declare \['device', 'alpha'\]"):
        notebooks.check_template("alpha", nb)
    notebooks.check_template("report", template("report"))  # back matter needs no mapping
    with pytest.raises(ValueError, match="no cell is tagged 'parameters'"):
        notebooks.check_template("alpha", new_notebook(cells=[code("x = 1")]))
    twice = new_notebook(cells=[code("a = 1", ["parameters"]), code("b = 1", ["parameters"])])
    with pytest.raises(ValueError, match="2 cells are tagged"):
        notebooks.check_template("alpha", twice)
    not_a_dict = new_notebook(cells=[code('profile = "s"\ndevice = "cpu"\nalpha = []', ["parameters"])])
    with pytest.raises(ValueError, match="must default to a dict"):
        notebooks.check_template("alpha", not_a_dict)


# ------------------------------------------------------------------------------------------ checking outputs

def test_find_problems_known_answers():
    error = new_output("error", ename="ValueError", evalue="bad size",
                       traceback=["\x1b[0;31mValueError\x1b[0m"])
    warning = new_output("stream", name="stderr",
                         text="/x/lib.py:12: FutureWarning: use y instead\n  warnings.warn(\n")
    printed = new_output("stream", name="stdout",
                         text="Traceback (most recent call last):\n  ...\nKeyError: 'k'\n")
    progress = new_output("stream", name="stderr", text="100%|██████████| 4/4 [00:01<00:00]\n")
    own = new_output("stream", name="stderr", text="/tmp/ipykernel_7/123.py:2: UserWarning: careful\n")
    nb = new_notebook(cells=[
        new_markdown_cell("# t"),
        code("a = f()", outputs=[error]),
        code("b = g()\nmore", outputs=[warning, progress]),
        code("print(tb)", outputs=[printed]),
        code("h()", ["injected-parameters"]),  # papermill's: not counted in the numbering
        code("warn()", outputs=[own]),
        code("clean()", outputs=[progress, new_output("execute_result", data={"text/plain": "Warning: not a "
                                                                               "Python warning line"})]),
    ])
    assert notebooks.find_problems(nb) == [
        "cell 1 (a = f()): raised ValueError: bad size",
        "cell 2 (b = g()): FutureWarning: use y instead (at /x/lib.py:12)",
        "cell 3 (print(tb)): printed a traceback ending in \"KeyError: 'k'\"",
        "cell 4 (warn()): UserWarning: careful",
    ]


def test_tag_injected_cell_hides_both_parameter_cells_once():
    nb = new_notebook(cells=[code("p = 1", ["parameters"]), code("p = 2", ["injected-parameters"]),
                             code("x")])
    assert notebooks.tag_injected_cell(nb) == 2
    assert [c.metadata.get("tags") for c in nb.cells] == [
        ["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], None]
    assert notebooks.tag_injected_cell(nb) == 0


# ------------------------------------------------------------------------------------------------- run record

def test_new_record_keeps_chapters_of_the_same_profile_only():
    previous = {"profile": "smoke", "device": "cpu", "chapters": {"alpha": {"wall_seconds": 1.0}}}
    assert notebooks.new_record("smoke", "cpu", previous)["chapters"] == {"alpha": {"wall_seconds": 1.0}}
    assert notebooks.new_record("book", "cpu", previous)["chapters"] == {}
    assert notebooks.new_record("smoke", "cuda", previous)["chapters"] == {}
    record = notebooks.new_record("smoke", "cpu", None)
    assert record["profile"] == "smoke" and record["schema_version"] == 1 and "torch" in record["versions"]


def test_json_write_is_atomic_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "record.json"
    notebooks._write_json_atomic(path, {"a": 1})
    notebooks._write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]
    with pytest.raises(FileNotFoundError, match="no run record"):
        notebooks.read_run_record(tmp_path / "absent.json")


# -------------------------------------------------------------------------------------------- one real run

def test_run_all_executes_tags_records_and_stops_at_a_failure(tmp_path):
    layout = make_root(tmp_path, {
        "alpha": "import os\nprint(alpha['n'] * 2, os.environ['MPLBACKEND'])",
        "beta": "raise ValueError('deliberate')",
    })
    with pytest.raises(NotebookExecutionError) as info:
        notebooks.run_all("smoke", root=tmp_path)
    assert info.value.notebook == "beta"
    assert info.value.problems == ["cell 2 (raise ValueError('deliberate')): raised ValueError: deliberate"]

    alpha = nbformat.read(layout.executed_copy("alpha"), as_version=4)
    injected = [c for c in alpha.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata.tags
    printed = alpha.cells[-1].outputs[0].text
    assert printed == "6 module://matplotlib_inline.backend_inline\n"  # the section reached the notebook

    record = json.loads(layout.record.read_text())
    assert record["profile"] == "smoke"
    assert [(k, v["status"]) for k, v in record["chapters"].items()] == [("alpha", "ok"), ("beta", "failed")]
    assert record["chapters"]["alpha"]["parameters"] == {"profile": "smoke", "device": "cpu",
                                                         "alpha": {"n": 3}}
    assert record["chapters"]["alpha"]["wall_seconds"] > 0
    assert not list(layout.executed.glob(".*"))  # no temporary left behind

    with pytest.raises(ValueError, match=r"unknown chapters \['gamma'\]"):
        notebooks.run_all("smoke", ["gamma"], root=tmp_path)
    with pytest.raises(TypeError, match="not a string"):
        notebooks.run_all("smoke", "alpha", root=tmp_path)  # type: ignore[arg-type]


def test_a_dead_kernel_fails_the_run_and_marks_the_notebook(tmp_path):
    layout = make_root(tmp_path, {"gamma": "import os\nos._exit(3)"})
    with pytest.raises(NotebookExecutionError, match="execution stopped: DeadKernelError"):
        notebooks.run_all("smoke", root=tmp_path)
    nb = nbformat.read(layout.executed_copy("gamma"), as_version=4)
    assert nb.metadata.papermill.exception is True  # no cell shows the failure: the book build must refuse it


def test_stale_temporaries_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from camrepro.notebooks import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = [tmp_path / f".report.{dead_pid}.53cbd8f9.running.ipynb", tmp_path / f".book-run.{dead_pid}.0a1b2c3d.tmp"]
    live = tmp_path / f".liftcam.{os.getpid()}.8a06c177.running.ipynb"
    kept = [live, tmp_path / "report.ipynb", tmp_path / ".hidden", tmp_path / ".a.b.c"]
    for path in stale + kept:
        path.write_text("{}")
    (tmp_path / f".x.{dead_pid}.ffffffff.tmp.d").mkdir()
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert remove_stale_temporaries(tmp_path / "absent") == []
