"""Tables for the colophon: how, where and from which code the book was computed.

They read the run record that :func:`camrepro.notebooks.run_all` writes and the manifests that
:func:`camrepro.cache.cached` writes next to every cached result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from camrepro.cache import MANIFEST


def _git_text(git: object) -> tuple[str, str]:
    if not isinstance(git, Mapping) or not git.get("commit"):
        return "not a git checkout", "unknown"
    dirty = git.get("dirty")
    return str(git["commit"]), ("unknown" if dirty is None else "yes" if dirty else "no")


def run_summary(record: Mapping[str, object]) -> pd.DataFrame:
    """One row per fact of the run: profile, device, commit, uncommitted changes, last update, total time."""
    commit, dirty = _git_text(record.get("git"))
    chapters = record.get("chapters", {})
    total = sum(float(c.get("wall_seconds", 0.0)) for c in chapters.values())  # type: ignore[union-attr]
    rows = [
        ("profile", str(record.get("profile"))),
        ("device", str(record.get("device"))),
        ("git commit", commit),
        ("uncommitted changes", dirty),
        ("last update (UTC)", str(record.get("updated"))),
        ("notebook wall time, total (s)", f"{total:.1f}"),
    ]
    return pd.DataFrame(rows, columns=["item", "value"])


TIME_COLUMNS = ["notebook", "status", "wall_seconds", "budget_seconds", "started (UTC)", "finished (UTC)"]


def chapter_times(record: Mapping[str, object]) -> pd.DataFrame:
    """Wall time and status of every notebook of the run, in the order they last ran."""
    rows = [
        {"notebook": name, "status": entry.get("status"),
         "wall_seconds": float(entry.get("wall_seconds", 0.0)), "budget_seconds": entry.get("budget_seconds"),
         "started (UTC)": entry.get("started"), "finished (UTC)": entry.get("finished")}
        for name, entry in record.get("chapters", {}).items()  # type: ignore[union-attr]
    ]
    return pd.DataFrame(rows, columns=TIME_COLUMNS)


def versions_table(record: Mapping[str, object]) -> pd.DataFrame:
    versions = record.get("versions", {})
    rows = [(name, version if version is not None else "not installed")
            for name, version in versions.items()]  # type: ignore[union-attr]
    return pd.DataFrame(rows, columns=["package", "version"])


def hardware_table(record: Mapping[str, object]) -> pd.DataFrame:
    hardware = record.get("hardware", {})
    return pd.DataFrame([(k, str(v)) for k, v in hardware.items()],  # type: ignore[union-attr]
                        columns=["item", "value"])


MANIFEST_COLUMNS = ["chapter", "name", "key", "wall_seconds", "device", "git commit", "uncommitted changes",
                    "finished (UTC)"]


def result_manifests(results_root: Path | str) -> pd.DataFrame:
    """One row per cached result under ``results_root`` (``<chapter>/<name>-<key>/manifest.json``).

    Unfinished results (``.tmp-*`` directories) are skipped: they have no manifest by construction.
    """
    root = Path(results_root)
    rows = []
    for path in sorted(root.glob(f"*/*/{MANIFEST}")):
        if path.parent.name.startswith(".tmp-"):
            continue
        manifest = json.loads(path.read_text())
        commit, dirty = _git_text(manifest.get("git"))
        hardware = manifest.get("hardware", {})
        rows.append({
            "chapter": manifest.get("chapter"), "name": manifest.get("name"), "key": manifest.get("key"),
            "wall_seconds": manifest.get("wall_seconds"),
            "device": hardware.get("device") if isinstance(hardware, Mapping) else None,
            "git commit": commit[:12] if commit != "not a git checkout" else commit,
            "uncommitted changes": dirty, "finished (UTC)": manifest.get("finished"),
        })
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


MAP_COLUMNS = ["model", "layer", "method", "maps computed", "distinct maps", "computed more than once"]


def map_store_summary(root: Path | str | None = None) -> pd.DataFrame:
    """How often the map store computed each map in this build, per model, layer and method: every map is
    computed once and then read by every chapter that needs it, so ``computed more than once`` should be 0."""
    from camrepro.experiments.kit import maps

    counts = maps.computation_counts(Path(root) if root is not None else None)
    rows: dict[tuple[str, str, str], list[int]] = {}
    for key, n in counts.items():
        model, layer, folder, _ = key.split("/", 3)
        method = folder.rsplit("-", 1)[0]   # the folder is <method>-<options hash>
        rows.setdefault((model, layer, method), []).append(n)
    table = [{"model": m, "layer": la, "method": me, "maps computed": sum(ns), "distinct maps": len(ns),
              "computed more than once": sum(1 for n in ns if n > 1)} for (m, la, me), ns in sorted(rows.items())]
    return pd.DataFrame(table, columns=MAP_COLUMNS)
