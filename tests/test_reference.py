"""The transcribed published figures (data/reference/)."""

from __future__ import annotations

import filecmp

import pytest

from camrepro.provenance import repository_root
from camrepro.reference import published, reference_dir


def test_published_tables_load_with_expected_columns():
    t1 = published("opticam_table1_cnn")
    assert {"method", "model", "AD", "AG", "AI"} <= set(t1.columns)
    fake = t1[(t1.method == "Fake-CAM") & (t1.model == "ResNet50")].iloc[0]
    assert (fake.AD, fake.AG, fake.AI) == (0.8, 1.6, 46.0)
    assert set(published("lficam_stability_iou.csv").method) == {"ABN", "LFI-CAM"}


def test_unknown_table_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no published table 'nope'.*opticam_table1_cnn"):
        published("nope")


def test_copies_match_the_shared_originals_when_present():
    shared = repository_root().parent / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip("no shared/reference beside the repository (a standalone clone)")
    for original in shared.iterdir():
        assert filecmp.cmp(original, reference_dir() / original.name, shallow=False), original.name
