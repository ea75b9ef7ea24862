"""Where downloaded and generated data lives on disk."""

from __future__ import annotations

import os
from pathlib import Path

from camrepro import provenance


def raw_data_root() -> Path:
    """``$CAMREPRO_DATA`` or ``<repository>/data/raw`` (git-ignored): downloads and generated datasets."""
    env = os.environ.get("CAMREPRO_DATA")
    return Path(env).resolve() if env else provenance.repository_root() / "data" / "raw"
