"""camrepro.exhibits: the provenance line and CSV of every table and figure, and the rerun box's commands."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from camrepro import cache, exhibits  # noqa: E402
from camrepro.experiments.chapter import Chapter  # noqa: E402
from camrepro.experiments.registry import get  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def result(name: str, key: str, commit: str = "0123456789abcdef", dirty: bool = False) -> cache.Result:
    return cache.Result(path=Path("/nowhere"), tables={"rows": pd.DataFrame({"x": [1, 2]})},
                        manifest={"key": key, "git": {"commit": commit, "dirty": dirty}})


@pytest.fixture
def shown(monkeypatch):
    """What IPython would have displayed, in order."""
    out: list[object] = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: out.append(obj))
    return out


def chapter() -> Chapter:
    return get("opticam")


def make(tmp_path, monkeypatch, **results):
    monkeypatch.setenv(exhibits.ENVIRONMENT_VARIABLE, str(tmp_path / "data" / "opticam"))
    return exhibits.Exhibits(chapter(), results, profile="smoke")


def html_of(obj) -> str:
    return obj.data if hasattr(obj, "data") and isinstance(obj.data, str) else ""


def test_table_shows_the_units_it_read_with_keys_commits_and_its_csv(tmp_path, monkeypatch, shown):
    show = make(tmp_path, monkeypatch, a=result("a", "k1"), b=result("b", "k2", dirty=True), c=result("c", "k3"))
    frame = pd.concat([show.results["a"]["rows"], show.results.table("rows", prefix="b")])
    show.table(frame)
    assert shown[0] is frame
    line = html_of(shown[1])
    assert exhibits.PROVENANCE_CLASS in line and "Table 1" in line
    assert "<code>a</code> (key <code>k1</code>, commit <code>0123456789</code>)" in line
    assert "<code>b</code> (key <code>k2</code>, commit <code>0123456789 (uncommitted changes)</code>)" in line
    assert "<code>c</code>" not in line  # not read
    assert 'href="data/opticam/table-01.csv"' in line
    written = pd.read_csv(tmp_path / "data" / "opticam" / "table-01.csv")
    assert written.x.tolist() == [1, 2, 1, 2]


def test_each_exhibit_names_only_what_was_read_since_the_previous_one(tmp_path, monkeypatch, shown):
    show = make(tmp_path, monkeypatch, a=result("a", "k1"), b=result("b", "k2"))
    show.table(show.results["a"]["rows"])
    fig, ax = plt.subplots()
    show.figure(fig, data=pd.DataFrame({"y": [3]}))  # drawn from the table above: a's units
    show.table(show.results["b"]["rows"].set_index("x"))
    show.published(pd.DataFrame({"AD": [1.0]}), "a paper, Table 9")
    lines = [html_of(o) for o in shown if exhibits.PROVENANCE_CLASS in html_of(o)]
    assert len(lines) == 4
    assert "<code>a</code>" in lines[1] and "Figure 2" in lines[1] and "figure-02.csv" in lines[1]
    assert "<code>b</code>" in lines[2] and "<code>a</code>" not in lines[2]
    assert "a paper, Table 9" in lines[3] and "compute unit" not in lines[3]
    assert not plt.fignum_exists(fig.number), "the figure is closed after it is shown"
    # an index that holds data is kept in the CSV
    assert pd.read_csv(tmp_path / "data" / "opticam" / "table-03.csv").columns.tolist() == ["x"]


def test_a_new_run_removes_the_csvs_of_the_previous_one(tmp_path, monkeypatch, shown):
    folder = tmp_path / "data" / "opticam"
    folder.mkdir(parents=True)
    (folder / "table-09.csv").write_text("old\n")
    make(tmp_path, monkeypatch, a=result("a", "k1"))
    assert not (folder / "table-09.csv").exists()


def test_outside_the_book_runner_csvs_go_to_the_results_folder(tmp_path, monkeypatch, shown):
    monkeypatch.delenv(exhibits.ENVIRONMENT_VARIABLE, raising=False)
    show = exhibits.Exhibits(chapter(), {"a": result("a", "k")}, profile="smoke", folder=tmp_path / "x")
    show.table(show.results["a"]["rows"])
    assert "file://" in html_of(shown[1]) and (tmp_path / "x" / "table-01.csv").is_file()


def test_bad_input_is_a_clear_error(tmp_path, monkeypatch, shown):
    with pytest.raises(TypeError, match="Chapter from the registry"):
        exhibits.Exhibits("opticam", {}, profile="smoke")
    show = make(tmp_path, monkeypatch, a=result("a", "k"))
    with pytest.raises(TypeError, match="a table must be a pandas DataFrame"):
        show.table([1, 2, 3])
    fig, _ = plt.subplots()
    with pytest.raises(TypeError, match="figure's data must be"):
        show.figure(fig, data=None)
    plt.close(fig)
    with pytest.raises(KeyError, match="no unit 'zz'"):
        show.results["zz"]


def test_csv_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "t.csv"
    target.write_text("complete\n")

    class Broken(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        exhibits._atomic_csv(Broken({"x": [1]}), target)
    assert target.read_text() == "complete\n" and list(tmp_path.iterdir()) == [target]


def test_rerun_box_lists_one_command_per_profile():
    commands = exhibits.rerun_commands("opticam")
    assert list(commands) == ["smoke", "book", "paper"]
    for profile, command in commands.items():
        assert f"notebooks/params/{profile}.yaml" in command and "notebooks/opticam.ipynb" in command
    assert "-p device cuda" in commands["paper"] and "cuda" not in commands["smoke"]
    box = exhibits.rerun_box_html("opticam")
    assert "Rerun this chapter" in box and 'href="opticam.ipynb"' in box
    assert all(c.replace("&", "&amp;") in box for c in commands.values())


def test_every_chapter_template_shows_the_rerun_box_and_its_exhibits():
    for name in ("benchmark", "liftcam", "afmi", "opticam", "lficam"):
        source = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", 4).cells
                           if c.cell_type == "code")
        assert "show.rerun_box()" in source and "exhibits.Exhibits(chapter" in source, name
        assert "plt.show()" not in source, f"{name}: a figure shown without its provenance line"


def test_the_smoke_command_of_the_rerun_box_runs(tmp_path):
    """The box's smoke command, exactly as printed, from the repository root (lficam: the cheapest chapter)."""
    command = exhibits.rerun_commands("lficam")["smoke"]
    out = ROOT / "_build" / "rerun" / "lficam-smoke.ipynb"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "CAMREPRO_ROOT": str(ROOT), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    env.pop(exhibits.ENVIRONMENT_VARIABLE, None)
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1500, check=False)
    assert done.returncode == 0, f"{shlex.quote(command)} failed:\n{done.stderr[-3000:]}"
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["papermill"]["parameters"]["profile"] == "smoke"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    lines = sum(exhibits.PROVENANCE_CLASS in str(o.get("data", {}).get("text/html", ""))
                for c in nb.cells for o in c.get("outputs", []))
    assert lines >= 5, f"the rerun notebook shows {lines} provenance lines"
