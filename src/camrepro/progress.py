"""Progress bars for the package's long loops: drawn on a terminal, silent everywhere else.

A bar appears only when stderr is a terminal (``camrepro.cli compute`` or a script run by hand), so the
notebooks that the book build executes stay silent, and no Jupyter widget is ever asked for (the plain
``tqdm.std`` bar is used, never ``tqdm.auto``). Under torchrun only rank 0 draws, so N ranks do not
interleave N bars. ``CAMREPRO_PROGRESS=1`` forces bars on, ``CAMREPRO_PROGRESS=0`` forces them off.

This module imports nothing else of the package: any layer may use it.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.std import tqdm

__all__ = ["progress", "progress_enabled"]

T = TypeVar("T")
_OFF = {"", "0", "false", "no", "off"}


def progress_enabled() -> bool:
    """Whether bars are drawn in this process (see the module docstring for the rule)."""
    forced = os.environ.get("CAMREPRO_PROGRESS")
    if forced is not None:
        return forced.strip().lower() not in _OFF
    if os.environ.get("RANK", "0") != "0":
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str | None = None,
             unit: str = "it", show: bool | None = None) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``); disabled unless ``progress_enabled()``.

    ``show`` overrides the rule for one call (a caller's own ``progress=`` argument). A disabled bar costs
    one attribute check per step, so it may wrap hot loops. Bars do not stay on screen once finished.
    """
    enabled = progress_enabled() if show is None else bool(show)
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)
