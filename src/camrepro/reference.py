"""Published figures and protocol facts from the papers (data/reference/), to quote beside ours.

The CSV files are transcriptions; data/reference/README.md names the table of the paper each comes from.
They are never presented as our results.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from camrepro.provenance import repository_root


def reference_dir() -> Path:
    return repository_root() / "data" / "reference"


def published(name: str) -> pd.DataFrame:
    """One transcribed table, e.g. ``published("opticam_table1_cnn")``."""
    stem = name[:-4] if name.endswith(".csv") else name
    path = reference_dir() / f"{stem}.csv"
    if not path.is_file():
        known = sorted(p.stem for p in reference_dir().glob("*.csv"))
        raise FileNotFoundError(f"no published table {stem!r} in {reference_dir()}; known: {known}")
    return pd.read_csv(path)
