"""The GPU check's dry run (CPU, tiny scale): every section runs and the CSV it writes is the table the
benchmark chapter reads, labelled with the device, the date and the commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from camrepro import gpu_check
from camrepro.experiments.benchmark import tables

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_writes_every_section(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    assert tables.gpu_check() is None
    assert gpu_check.main(["--dry-run"]) == 0
    table = tables.gpu_check()
    assert table is not None and list(table.columns) == tables.GPU_CHECK_COLUMNS
    assert set(table.section) == {"cuda tests", "bench", "opticam chapter", "opti-cam resnet50", "cuda passes"}
    assert "section failed" not in set(table.figure)
    assert table.dry_run.all() and table.gpu.str.startswith("none (CPU").all()
    assert table.commit.notna().all() and table.date.str.match(r"\d{4}-\d\d-\d\dT").all()
    cuda = table[table.section == "cuda tests"].set_index("figure").value
    # the cuda-marked tests: skipped here, all 16 of them
    assert cuda["tests failures"] == cuda["tests errors"] == 0 and cuda["tests skipped"] >= 16
    bench = table[table.section == "bench"]
    assert {"grad-cam b1 ours", "grad-cam b1 forward"} <= set(bench.figure)
    throughput = table[table.section == "opti-cam resnet50"].set_index("figure").value
    per_iteration = throughput["batch 2 s per image-iteration"]
    assert throughput["projected 50000 images x 100 iterations"] == pytest.approx(
        per_iteration * 50_000 * 100 / 3600)
    passes = table[table.section == "cuda passes"].set_index("figure").value
    assert passes["float32 contiguous: time / float32 contiguous"] == 1.0
    assert passes["float32 contiguous: gradient correlation with float32 contiguous"] == pytest.approx(1.0)
    # today's pass (the folded copy) and channels-last give the same gradient up to rounding; bf16 close to it
    assert passes["today (mask_gradient): gradient correlation with float32 contiguous"] > 0.9999
    assert passes["float32 channels-last: gradient correlation with float32 contiguous"] > 0.9999
    assert passes["bf16 autocast: gradient correlation with float32 contiguous"] > 0.9
    assert not any("torch.compile" in f for f in passes.index)  # not compiled in a dry run
    units = table[(table.section == "opticam chapter") & table.figure.str.endswith(" wall")]
    assert {"faithfulness-mobilenet_v2 wall", "ablation wall", "protocol wall", "timing wall"} <= set(units.figure)


def test_without_cuda_the_full_check_says_so(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--dry-run" in err


def test_a_failed_section_is_recorded_and_the_others_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_RESULTS", str(tmp_path))
    monkeypatch.setattr(gpu_check, "cuda_tests",
                        lambda figures, dry, out: (_ for _ in ()).throw(RuntimeError("boom")))
    assert gpu_check.main(["--dry-run", "--skip", "bench", "chapter", "throughput", "passes"]) == 1
    table = tables.gpu_check()
    failed = table[table.figure == "section failed"]
    assert list(failed.section) == ["cuda tests"] and "RuntimeError: boom" in failed.detail.iloc[0]


def test_a_foreign_csv_is_refused(tmp_path):
    path = tmp_path / "gpu-check.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="is not a GPU check table: it lacks the column"):
        tables.gpu_check(path)


def test_make_target_installs_without_dependencies_and_never_builds_the_venv():
    text = (REPO / "Makefile").read_text()
    target = text[text.index("\ngpu-check:"):].split("\n\n")[0]
    install = next(line for line in target.splitlines() if "pip install" in line)
    assert "--no-deps" in install and install.endswith(" -e .") and "camrepro.gpu_check" in target
    assert "$(STAMP)" not in target.splitlines()[1] and " env" not in target.splitlines()[1]
    assert subprocess.run(["make", "-n", "gpu-check"], cwd=REPO, capture_output=True, text=True).returncode == 0
