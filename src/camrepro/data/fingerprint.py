"""Content fingerprints of the files a reader provides, for cache keys: a change to the data recomputes.

- :func:`folder_fingerprint` — every data file under a folder by relative name, size and modification time
  (a full hash of 50,000 images would cost minutes at every run; a copied, edited or replaced image changes
  its size or its mtime);
- :func:`file_sha256` — the full sha256 of one file (labels files, weights), memoised per process by
  (path, size, mtime) so a chapter that asks for it in every unit reads the file once.

Folder fingerprints name files relative to the folder, so moving a folder (with its mtimes) keeps them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path

from camrepro.data.checksums import sha256_file


def folder_fingerprint(root: str | Path, extensions: Collection[str] | None = None) -> dict[str, object]:
    """``{"files": count, "bytes": total size, "sha256": hash of the (name, size, mtime) list}`` of the files
    under ``root`` (recursively, hidden files and folders skipped; only ``extensions`` when given, compared
    lower-case)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    wanted = None if extensions is None else {e.lower() for e in extensions}
    entries: list[tuple[str, int, int]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or (wanted is not None and Path(name).suffix.lower() not in wanted):
                continue
            path = Path(folder) / name
            stat = path.stat()
            entries.append((path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    entries.sort()
    digest = hashlib.sha256()
    for name, size, mtime in entries:
        digest.update(f"{name}\0{size}\0{mtime}\n".encode())
    return {"files": len(entries), "bytes": sum(e[1] for e in entries), "sha256": digest.hexdigest()[:24]}


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | Path) -> str:
    """The full sha256 of ``path`` (memoised while its size and mtime stay the same)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {path} does not exist")
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
