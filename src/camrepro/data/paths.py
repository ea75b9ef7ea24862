"""Where downloaded and generated data lives on disk, and the one rule for the paths a reader gives."""

from __future__ import annotations

import os
from pathlib import Path

from camrepro import provenance


def raw_data_root() -> Path:
    """``$CAMREPRO_DATA`` or ``<repository>/data/raw`` (git-ignored): downloads and generated datasets."""
    env = os.environ.get("CAMREPRO_DATA")
    return Path(env).resolve() if env else provenance.repository_root() / "data" / "raw"


def user_path(value: str | os.PathLike) -> Path:
    """A path from the parameters (a data folder, a labels file, a weights file): ``~`` expanded, an absolute
    path kept, a relative one taken from the repository root (:func:`camrepro.provenance.repository_root`).

    Every chapter resolves its paths with this one rule, so a parameter file means the same files whether a
    notebook runs in ``notebooks/``, papermill in the root, or ``camrepro.cli`` anywhere else.
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise TypeError(f"a path must be a non-empty string, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else provenance.repository_root() / path
