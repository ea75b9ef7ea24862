"""Checks of a chapter's parameters (its section of ``notebooks/params/<profile>.yaml``), shared by the chapters.

Each error names the chapter and the key, so a reader who edits a profile learns which line is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from camrepro import models


def check_count(chapter: str, name: str, value: object, minimum: int = 0) -> int:
    """``value`` as an int ≥ ``minimum`` (bools refused); ValueError naming ``chapter`` and ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{chapter} parameter {name} must be an int ≥ {minimum}, got {value!r}")
    return value


def check_required(chapter: str, params: object, required: Iterable[str]) -> None:
    """``params`` is a mapping holding every key of ``required``; TypeError / ValueError naming what lacks."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{chapter} parameters must be a mapping, got {type(params).__name__}")
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(f"{chapter} parameters lack {missing}; see the {chapter} section of "
                         "notebooks/params/book.yaml")


def check_models(chapter: str, name: str, names: object) -> None:
    """``names`` is a non-empty list of models that :func:`camrepro.models.load` knows."""
    listed = list(names) if isinstance(names, (list, tuple)) else []
    unknown = [m for m in listed if m not in models.MODELS]
    if unknown or not listed:
        raise ValueError(f"{chapter} parameter {name!r} must list models among {sorted(models.MODELS)}; "
                         f"unknown models {unknown or names!r}")
