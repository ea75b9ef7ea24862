"""The book's chapters by name: what the CLI, the report and the notebooks look chapters up in.

Chapters are imported on first use (each pulls in models and methods).
"""

from __future__ import annotations

import importlib

from camrepro.experiments.chapter import Chapter

# name → the package whose ``CHAPTER`` implements the contract, in the book's order
CHAPTERS: dict[str, str] = {
    "lficam": "camrepro.experiments.lficam",
    "liftcam": "camrepro.experiments.liftcam",
    "afmi": "camrepro.experiments.afmi",
    "opticam": "camrepro.experiments.opticam",
    "benchmark": "camrepro.experiments.benchmark",
}


def names() -> list[str]:
    return list(CHAPTERS)


def get(name: str) -> Chapter:
    """The :class:`Chapter` called ``name``; ValueError naming the known chapters otherwise."""
    if name not in CHAPTERS:
        raise ValueError(f"unknown chapter {name!r}; the chapters are {names()}")
    chapter = importlib.import_module(CHAPTERS[name]).CHAPTER
    if not isinstance(chapter, Chapter) or chapter.name != name:
        raise TypeError(f"{CHAPTERS[name]}.CHAPTER must be the Chapter {name!r}")
    return chapter
