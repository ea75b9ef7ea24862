"""Content-hash caching, atomic writes and manifests (src/camrepro/cache.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camrepro import cache


def _compute(calls: list[int], value: float = 1.0):
    def compute():
        calls.append(1)
        return {"table": pd.DataFrame({"a": [1, 2], "b": [value, value * 2]}),
                "maps": {"m": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    return compute


def test_first_call_computes_then_hits(tmp_path: Path):
    calls: list[int] = []
    first = cache.cached("ch", "res", {"n": 2}, _compute(calls), root=tmp_path)
    second = cache.cached("ch", "res", {"n": 2}, _compute(calls), root=tmp_path)
    assert calls == [1]
    assert not first.from_cache and second.from_cache
    pd.testing.assert_frame_equal(first["table"], second["table"])
    np.testing.assert_array_equal(second.arrays["maps"]["m"], np.arange(6).reshape(2, 3))


def test_parameter_change_recomputes(tmp_path: Path):
    calls: list[int] = []
    cache.cached("ch", "res", {"n": 2}, _compute(calls), root=tmp_path)
    cache.cached("ch", "res", {"n": 3}, _compute(calls), root=tmp_path)
    assert calls == [1, 1]


def test_key_depends_on_code_and_parameter_order_does_not_matter():
    assert cache.cache_key("x", {"a": 1, "b": 2}, code="c1") == cache.cache_key("x", {"b": 2, "a": 1}, code="c1")
    assert cache.cache_key("x", {"a": 1}, code="c1") != cache.cache_key("x", {"a": 1}, code="c2")
    assert cache.cache_key("x", {"a": 1}, code="c1") != cache.cache_key("x", {"a": 1.5}, code="c1")


def test_unhashable_parameter_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TypeError, match="cannot be hashed"):
        cache.cached("ch", "res", {"f": object()}, _compute([]), root=tmp_path)


def test_manifest_records_provenance(tmp_path: Path):
    res = cache.cached("ch", "res", {"n": 2, "seed": 7}, _compute([]), root=tmp_path, device="cpu")
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["parameters"] == {"n": 2, "seed": 7}
    assert manifest["schema_version"] == 1
    assert {"commit", "dirty"} <= set(manifest["git"])
    assert manifest["versions"]["torch"].startswith("2.13")
    assert manifest["hardware"]["device"] == "cpu"
    assert manifest["wall_seconds"] >= 0 and manifest["started"] <= manifest["finished"]
    assert manifest["outputs"] == ["maps", "table"]


def test_failed_compute_leaves_nothing(tmp_path: Path):
    def boom():
        raise RuntimeError("failed midway")
    with pytest.raises(RuntimeError):
        cache.cached("ch", "res", {"n": 1}, boom, root=tmp_path)
    assert list((tmp_path / "ch").iterdir()) == []


def test_bad_output_type_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TypeError, match="must be a DataFrame"):
        cache.cached("ch", "res", {"n": 1}, lambda: {"x": [1, 2]}, root=tmp_path)


def test_killed_run_is_recomputed_not_read(tmp_path: Path):
    """SIGKILL a run after it has written part of its outputs; the next run must recompute."""
    marker = tmp_path / "started"
    script = textwrap.dedent(f"""
        import time, numpy as np, pandas as pd
        from pathlib import Path
        from camrepro import cache
        def compute():
            Path({str(marker)!r}).write_text("x")
            time.sleep(60)
            return {{"table": pd.DataFrame({{"a": [0]}})}}
        cache.cached("ch", "res", {{"n": 5}}, compute, root=Path({str(tmp_path)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None, "the child run ended before it started computing"
            assert time.time() < deadline, "the child run never started computing"
            time.sleep(0.05)
        # A partial result: a temp directory exists but no finished one.
        partial = list((tmp_path / "ch").glob(".tmp-*"))
        assert partial, "the run should be working in a temporary directory"
        (partial[0] / "table.csv").write_text("a\n0\n")  # as if it had written an output before dying
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    calls: list[int] = []
    res = cache.cached("ch", "res", {"n": 5}, _compute(calls), root=tmp_path)
    assert calls == [1] and not res.from_cache
    assert list(res["table"]["b"]) == [1.0, 2.0]
    assert not list((tmp_path / "ch").glob(".tmp-*")), "the stale temporary directory is cleaned up"


def test_source_hash_covers_computing_modules_but_not_the_runner_or_the_report(tmp_path):
    from camrepro.cache import NOT_HASHED, source_hash

    package = tmp_path / "pkg"
    (package / "experiments").mkdir(parents=True)
    files = {"cache.py": "a = 1\n", "experiments/chapter.py": "b = 2\n", "report.py": "c = 3\n",
             "experiments/report.py": "d = 4\n"}
    for name, text in files.items():
        (package / name).write_text(text)
    assert "report.py" in NOT_HASHED
    before = source_hash(package)
    (package / "report.py").write_text("c = 30\n")            # renders results: not part of the key
    assert source_hash(package) == before
    for name in ("cache.py", "experiments/chapter.py", "experiments/report.py"):  # computes: part of it
        (package / name).write_text(files[name] + "# changed\n")
        changed = source_hash(package)
        assert changed != before
        before = changed
