"""camrepro.cli: argument handling, delegation, and error messages."""

from __future__ import annotations

import sys
import types

import pytest

from camrepro import cli


def test_help_lists_the_four_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "notebooks", "compute", "html", "bench"):
        assert command in out


def test_notebooks_needs_a_profile(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["notebooks"])
    assert info.value.code == 2
    assert "--profile" in capsys.readouterr().err


def test_unknown_profile_is_a_clear_error(capsys, tmp_path, monkeypatch):
    (tmp_path / "notebooks" / "params").mkdir(parents=True)
    (tmp_path / "notebooks" / "params" / "smoke.yaml").write_text("profile: smoke\ndevice: cpu\n")
    monkeypatch.setenv("CAMREPRO_ROOT", str(tmp_path))
    assert cli.main(["notebooks", "--profile", "huge"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("camrepro notebooks: error: unknown profile 'huge'")
    assert "available: ['smoke']" in err


def test_bench_gets_every_argument_untouched(monkeypatch):
    seen = []
    module = types.ModuleType("camrepro.bench")
    module.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "camrepro.bench", module)
    assert cli.main(["bench", "--batch", "16", "--help"]) == 3
    assert seen == [["--batch", "16", "--help"]]


def test_data_calls_ensure_all(monkeypatch):
    calls = []
    module = types.ModuleType("camrepro.data.check")
    module.ensure_all = lambda: calls.append("ensure_all")
    monkeypatch.setitem(sys.modules, "camrepro.data.check", module)
    assert cli.main(["data"]) == 0
    assert calls == ["ensure_all"]


def test_a_missing_module_is_named(capsys, monkeypatch):
    # importing a module whose sys.modules entry is None raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "camrepro.bench", None)
    assert cli.main(["bench"]) == 1
    assert capsys.readouterr().err.startswith("camrepro bench: error: camrepro.bench is not available")


def test_compute_fills_a_chapters_cache_and_prints_its_verdicts(capsys, monkeypatch, tmp_path):
    import pandas as pd

    from camrepro import evidence
    from camrepro.experiments import chapter as chapter_module
    from camrepro.experiments import registry
    from camrepro.experiments.schema import Param, Schema

    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))

    def units(p):
        return [chapter_module.Unit("scores", p, lambda device: {"t": pd.DataFrame({"x": [p["n"]]})})]

    def claims_from(results, p):
        return [evidence.Claim("k", "Opti-CAM", "toy", "c", "—", "—", "r", untestable="needs a GPU")]

    toy = chapter_module.Chapter("toy", "Toy", Schema("toy", {"n": Param(1, int, minimum=1)}), units, claims_from)
    monkeypatch.setattr(registry, "get", lambda name: toy)
    monkeypatch.setattr("camrepro.notebooks.load_profile", lambda profile: {"device": "cpu", "toy": {"n": 2}})
    assert cli.main(["compute", "--chapter", "toy", "--profile", "smoke", "--set", '{"n": 3}']) == 0
    out = capsys.readouterr().out
    assert "toy/scores: computed" in out and "k: not testable here" in out
    assert cli.main(["compute", "--chapter", "toy", "--profile", "smoke", "--set", '{"n": 3}']) == 0
    assert "toy/scores: cached" in capsys.readouterr().out
    assert cli.main(["compute", "--chapter", "toy", "--profile", "smoke", "--set", '{"m": 3}']) == 1
    assert "unknown toy parameter(s) ['m']" in capsys.readouterr().err
