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
        ("build machine", _machine_text(record.get("hardware"))),
        ("machine load (1-minute average, over the notebooks' starts and ends)", _load_text(chapters)),
    ]
    return pd.DataFrame(rows, columns=["item", "value"])


def _machine_text(hardware: object) -> str:
    if not isinstance(hardware, Mapping) or not hardware:
        return "unknown"
    parts = [str(hardware.get("processor", "unknown processor")), f"{hardware.get('cpu_count', '?')} CPU cores"]
    if hardware.get("gpu"):
        parts.append(str(hardware["gpu"]))
    return ", ".join(parts) + f"; {hardware.get('platform', 'unknown platform')}"


def _load_text(chapters: object) -> str:
    loads = [float(v) for entry in (chapters.values() if isinstance(chapters, Mapping) else [])
             for v in (entry.get("load_at_start"), entry.get("load_at_end")) if v is not None]
    if not loads:
        return "not recorded"
    return f"{min(loads):.2f} to {max(loads):.2f} (median {sorted(loads)[len(loads) // 2]:.2f}, {len(loads)} readings)"


def citation_html(record: Mapping[str, object], cff_path: Path | str) -> str:
    """The compendium's citation for the how-to-cite page: title, version and authors from CITATION.cff and the
    commit this book was built from (from the run record), as text and as BibTeX."""
    import html

    import yaml

    cff = yaml.safe_load(Path(cff_path).read_text())
    for field in ("title", "version", "authors"):
        if not cff.get(field):
            raise ValueError(f"{cff_path} has no {field!r}")
    commit, dirty = _git_text(record.get("git"))
    authors = " and ".join(a.get("name") or f"{a.get('family-names')}, {a.get('given-names')}"
                           for a in cff["authors"])
    year = str(record.get("updated", ""))[:4] or "n.d."
    state = "" if dirty == "no" else " (with uncommitted changes)" if dirty == "yes" else ""
    bibtex = (f"@software{{camrepro,\n  author  = {{{{{authors}}}}},\n  title   = {{{cff['title']}}},\n"
              f"  version = {{{cff['version']}}},\n  year    = {{{year}}},\n"
              f"  note    = {{commit {commit}{state}, profile {record.get('profile')}}}\n}}")
    return (f'<p class="camrepro-citation">{html.escape(authors)}. <em>{html.escape(cff["title"])}</em>, '
            f"version {html.escape(str(cff['version']))}, commit <code>{html.escape(commit)}</code>{state}, "
            f"built at the <code>{html.escape(str(record.get('profile')))}</code> profile.</p>"
            f'<pre class="camrepro-citation-bibtex">{html.escape(bibtex)}</pre>')


TIME_COLUMNS = ["notebook", "status", "wall_seconds", "budget_seconds", "load at start", "load at end",
                "started (UTC)", "finished (UTC)"]


def chapter_times(record: Mapping[str, object]) -> pd.DataFrame:
    """Wall time and status of every notebook of the run, in the order they last ran."""
    rows = [
        {"notebook": name, "status": entry.get("status"),
         "wall_seconds": float(entry.get("wall_seconds", 0.0)), "budget_seconds": entry.get("budget_seconds"),
         "load at start": entry.get("load_at_start"), "load at end": entry.get("load_at_end"),
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
