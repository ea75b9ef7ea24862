"""The benchmark chapter's claim (camrepro.experiments.benchmark.claims) on hand-made summaries."""

from __future__ import annotations

import pandas as pd
import pytest

from camrepro.experiments import benchmark


def summary_rows(**methods: tuple[int, float, float]) -> pd.DataFrame:
    """One model's summary: method → (photos, AD, AG)."""
    return pd.DataFrame([{"model": "net", "method": name, "n_images": n, "AD": ad, "AG": ag}
                         for name, (n, ad, ag) in methods.items()])


@pytest.fixture
def claims_of(monkeypatch):
    def run(table: pd.DataFrame) -> pd.DataFrame:
        monkeypatch.setattr(benchmark, "run", lambda params, device="cpu": {})
        monkeypatch.setattr(benchmark, "summary", lambda results: table)
        return benchmark.claims({})
    return run


def test_fake_cam_claim_compares_methods_run_on_the_same_photos(claims_of):
    claims = claims_of(summary_rows(**{"fake-cam": (16, 0.5, 2.0), "grad-cam": (16, 9.0, 21.0),
                                       "score-cam": (1, 0.0, 85.0)}))
    assert claims.verdict.tolist() == ["reproduced"]
    ours = claims.ours.iloc[0]
    assert "best other AD 9.0, best other AG 21.0" in ours
    assert "score-cam left out (run on 1 photo(s) only)" in ours


def test_fake_cam_claim_fails_when_a_real_map_has_a_lower_average_drop(claims_of):
    claims = claims_of(summary_rows(**{"fake-cam": (16, 0.5, 2.0), "grad-cam": (16, 0.2, 21.0)}))
    assert claims.verdict.tolist() == ["not reproduced"]
    claims = claims_of(summary_rows(**{"fake-cam": (16, 0.5, 30.0), "grad-cam": (16, 9.0, 21.0)}))
    assert claims.verdict.tolist() == ["not reproduced"]


def test_no_claim_without_fake_cam_or_a_comparable_method(claims_of):
    assert claims_of(summary_rows(**{"grad-cam": (16, 9.0, 21.0)})).empty
    assert claims_of(summary_rows(**{"fake-cam": (16, 0.5, 2.0), "score-cam": (1, 0.0, 85.0)})).empty
