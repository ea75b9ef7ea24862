"""Results cached on disk by content hash, written atomically, each with a manifest.

A result lives in ``data/results/<chapter>/<key>/``: one file per table (``<name>.csv``), per array bundle
(``<name>.npz``) and ``manifest.json``. ``key`` hashes the parameters and the package's source code (all of it but the
modules that only render or report, :data:`NOT_HASHED`), so a rerun with nothing changed is a cache hit and any
change to either recomputes. The directory is assembled under a
temporary name and renamed into place only when complete; a run killed midway leaves at most a ``.tmp-*``
directory, which is never read and is removed by the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camrepro import provenance

MANIFEST = "manifest.json"
_PACKAGE_DIR = Path(__file__).resolve().parent


def results_root() -> Path:
    """``$CAMREPRO_RESULTS`` or ``<repository>/data/results``."""
    env = os.environ.get("CAMREPRO_RESULTS")
    return Path(env).resolve() if env else provenance.repository_root() / "data" / "results"


# Modules that only run, render or report on results and never compute one: a change to them must not
# invalidate every cached result (the notebook runner, the book build, the report and colophon tables, the
# command line, the chapter pages' exhibits, the speed benchmark and the GPU check, which write their own CSVs
# outside the cache).
NOT_HASHED = frozenset({"notebooks.py", "book.py", "report.py", "colophon.py", "cli.py", "bench.py",
                        "exhibits.py", "gpu_check.py"})
# The chapters' prose built from their parameters (experiments/<chapter>/setup_text.py, kit/setup_text.py): it
# describes a result and never computes one, at whatever depth of the package it lives.
PROSE_MODULE = "setup_text.py"


def source_hash(package_dir: Path = _PACKAGE_DIR) -> str:
    """sha256 over every ``.py`` file of the package (path and content), in a stable order, except the
    top-level modules in :data:`NOT_HASHED` and the prose modules (:data:`PROSE_MODULE`)."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir)
        if ("__pycache__" in path.parts or (len(relative.parts) == 1 and relative.name in NOT_HASHED)
                or relative.name == PROSE_MODULE):
            continue
        digest.update(str(path.relative_to(package_dir)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _canonical(obj: object) -> object:
    """JSON-able form of parameters, so that equal parameters hash equally."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"parameter value {obj!r} of type {type(obj).__name__} cannot be hashed into a cache key")


def cache_key(name: str, params: Mapping[str, object], code: str | None = None) -> str:
    payload = json.dumps({"name": name, "params": _canonical(params), "code": code or source_hash()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Result:
    """A finished result: its tables, its arrays and its manifest."""

    path: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    manifest: dict[str, object] = field(default_factory=dict)
    from_cache: bool = False

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def _write_outputs(tmp: Path, outputs: Mapping[str, object]) -> None:
    for name, value in outputs.items():
        if isinstance(value, pd.DataFrame):
            value.to_csv(tmp / f"{name}.csv", index=False)
        elif isinstance(value, Mapping) and all(isinstance(v, np.ndarray) for v in value.values()):
            np.savez_compressed(tmp / f"{name}.npz", **value)
        else:
            raise TypeError(f"output {name!r} must be a DataFrame or a dict of numpy arrays, "
                            f"got {type(value).__name__}")


def load(path: Path) -> Result:
    manifest = json.loads((path / MANIFEST).read_text())
    tables = {p.stem: pd.read_csv(p) for p in sorted(path.glob("*.csv"))}
    arrays = {}
    for p in sorted(path.glob("*.npz")):
        with np.load(p) as bundle:
            arrays[p.stem] = {k: bundle[k] for k in bundle.files}
    return Result(path=path, tables=tables, arrays=arrays, manifest=manifest, from_cache=True)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """A fresh temporary directory beside ``final`` to fill: on a clean exit it replaces ``final`` in one
    rename, on an error or an interrupt it is removed, so ``final`` is never half written. Temporary
    directories that a killed process left for ``final`` are removed first. Write whatever marks the result
    complete (its manifest) last, inside the block."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def entry(chapter: str, name: str, params: Mapping[str, object], root: Path | None = None) -> tuple[str, Path]:
    """The key and the directory of the result ``(chapter, name, params, code)``, whether it exists or not."""
    key = cache_key(f"{chapter}/{name}", params)
    return key, (root or results_root()) / chapter / f"{name}-{key}"


def cached(chapter: str, name: str, params: Mapping[str, object],
           compute: Callable[[], Mapping[str, object]], *, device: str | None = None,
           root: Path | None = None, force: bool = False,
           manifest_extra: Mapping[str, object] | None = None) -> Result:
    """Return the stored result for ``(chapter, name, params, code)``, computing and storing it if absent.

    ``compute()`` returns a mapping of output name to a DataFrame or a dict of numpy arrays.
    ``manifest_extra``: more provenance for the manifest (a sharded run records its shards there).
    """
    key, final = entry(chapter, name, params, root)
    if not force and (final / MANIFEST).is_file():
        return load(final)
    with atomic_directory(final) as tmp:
        started, t0 = provenance.now(), time.perf_counter()
        outputs = compute()
        wall = time.perf_counter() - t0
        _write_outputs(tmp, outputs)
        manifest = {
            "schema_version": provenance.SCHEMA_VERSION,
            "chapter": chapter,
            "name": name,
            "key": key,
            "parameters": _canonical(params),
            "git": provenance.git_state(),
            "source_hash": source_hash(),
            "versions": provenance.package_versions(),
            "hardware": provenance.hardware(device),
            "started": started,
            "finished": provenance.now(),
            "wall_seconds": round(wall, 3),
            "outputs": sorted(outputs),
            **dict(manifest_extra or {}),
        }
        # The manifest is written last: its presence is what marks a result as complete.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    result = load(final)
    result.from_cache = False
    return result
