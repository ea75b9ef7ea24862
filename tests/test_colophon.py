"""camrepro.colophon: tables from the run record and the result manifests."""

from __future__ import annotations

import json

from camrepro import colophon

RECORD = {
    "profile": "smoke", "device": "cpu", "updated": "2026-01-01T00:03:00+00:00",
    "git": {"commit": "abc123", "dirty": True},
    "versions": {"torch": "2.13.0", "captum": None},
    "hardware": {"processor": "AMD EPYC", "cpu_count": 2},
    "chapters": {
        "alpha": {"status": "ok", "wall_seconds": 12.25, "started": "s1", "finished": "f1", "load_at_start": 1.5,
                  "load_at_end": 2.25},
        "report": {"status": "ok", "wall_seconds": 3.5, "started": "s2", "finished": "f2"},
    },
}


def test_run_summary():
    summary = dict(colophon.run_summary(RECORD).itertuples(index=False))
    assert summary == {"profile": "smoke", "device": "cpu", "git commit": "abc123",
                       "uncommitted changes": "yes", "last update (UTC)": "2026-01-01T00:03:00+00:00",
                       "notebook wall time, total (s)": "15.8",
                       "build machine": "AMD EPYC, 2 CPU cores; unknown platform",
                       "machine load (1-minute average, over the notebooks' starts and ends)":
                           "1.50 to 2.25 (median 2.25, 2 readings)"}
    no_git_record = {**RECORD, "git": {"commit": None, "dirty": None}}
    no_git = dict(colophon.run_summary(no_git_record).itertuples(index=False))
    assert no_git["git commit"] == "not a git checkout" and no_git["uncommitted changes"] == "unknown"
    bare = dict(colophon.run_summary({"chapters": {}}).itertuples(index=False))
    assert bare["build machine"] == "unknown" and bare[next(k for k in bare if k.startswith("machine load"))] == \
        "not recorded"


def test_chapter_times_in_run_order():
    times = colophon.chapter_times(RECORD)
    assert list(times["notebook"]) == ["alpha", "report"]
    assert list(times["wall_seconds"]) == [12.25, 3.5]
    assert times["load at start"].tolist()[0] == 1.5 and times["load at end"].tolist()[0] == 2.25
    assert colophon.chapter_times({"chapters": {}}).empty


def test_versions_and_hardware():
    versions = colophon.versions_table(RECORD).values.tolist()
    assert versions == [["torch", "2.13.0"], ["captum", "not installed"]]
    assert colophon.hardware_table(RECORD).values.tolist() == [["processor", "AMD EPYC"], ["cpu_count", "2"]]


def test_result_manifests_skips_unfinished(tmp_path):
    done = tmp_path / "opticam" / "scores-0123456789abcdef"
    done.mkdir(parents=True)
    (done / "manifest.json").write_text(json.dumps({
        "chapter": "opticam", "name": "scores", "key": "0123456789abcdef", "wall_seconds": 4.5,
        "hardware": {"device": "cpu"}, "git": {"commit": "0123456789abcdef0123", "dirty": False},
        "finished": "2026-01-01T00:00:00+00:00"}))
    unfinished = tmp_path / "opticam" / ".tmp-scores-x"
    unfinished.mkdir()
    (unfinished / "manifest.json").write_text("{}")
    table = colophon.result_manifests(tmp_path)
    assert table.values.tolist() == [["opticam", "scores", "0123456789abcdef", 4.5, "cpu", "0123456789ab",
                                      "no", "2026-01-01T00:00:00+00:00"]]
    assert colophon.result_manifests(tmp_path / "absent").empty


def test_map_store_summary_counts_computations_per_method(tmp_path):
    (tmp_path / "computations.log").write_text(
        "mobilenet_v2/features.18/grad-cam-aa11/k1\nmobilenet_v2/features.18/grad-cam-aa11/k2\n"
        "mobilenet_v2/features.18/grad-cam-aa11/k1\nmobilenet_v2/input/deeplift-bb22/k3\n"
        "mobilenet_v2/input/deeplift-cc33/k3\n")
    table = colophon.map_store_summary(tmp_path)
    grad = table[table["method"] == "grad-cam"].iloc[0]
    assert (grad["maps computed"], grad["distinct maps"], grad["computed more than once"]) == (3, 2, 1)
    deeplift = table[table["method"] == "deeplift"].iloc[0]     # one image under two option sets: two maps
    assert (deeplift["layer"], deeplift["distinct maps"], deeplift["computed more than once"]) == ("input", 2, 0)
    assert colophon.map_store_summary(tmp_path / "nothing").empty


def test_citation_names_version_and_commit_of_the_build(tmp_path):
    cff = tmp_path / "CITATION.cff"
    cff.write_text("title: A compendium\nversion: 1.2.3\nauthors:\n  - name: The team\n")
    text = colophon.citation_html(RECORD, cff)
    assert "A compendium" in text and "version 1.2.3" in text and "<code>abc123</code>" in text
    assert "uncommitted changes" in text and "version = {1.2.3}" in text and "author  = {{The team}}" in text
    cff.write_text("title: A compendium\nauthors:\n  - name: The team\n")
    import pytest

    with pytest.raises(ValueError, match="no 'version'"):
        colophon.citation_html(RECORD, cff)


def test_machine_load_is_recorded():
    from camrepro import provenance

    load = provenance.machine_load()
    assert set(load) == {"load_1min", "load_5min", "load_15min"}
    assert load["load_1min"] is None or load["load_1min"] >= 0
