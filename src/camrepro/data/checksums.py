"""File checksums: sha256 of a file and torchvision's hash-prefix-in-the-file-name convention."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

# torchvision names its weight files ``<stem>-<first 8+ hex digits of the sha256>.pth``.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.[A-Za-z0-9]+$")


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 digest of the file at ``path``, read in chunks."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def hash_prefix_from_name(path: str | Path) -> str:
    """The hash prefix a torchvision-style file name carries: ``mobilenet_v2-b0353104.pth`` → ``b0353104``."""
    match = _HASH_IN_NAME.search(Path(path).name)
    if match is None:
        raise ValueError(f"file name {Path(path).name!r} carries no '-<hex>.<ext>' hash prefix")
    return match.group(1)


def verify_hash_prefix(path: str | Path, prefix: str | None = None) -> str:
    """Check that the sha256 of ``path`` starts with ``prefix`` (default: the prefix in its file name).

    Returns the full hex digest; raises ValueError naming both hashes on a mismatch.
    """
    expected = (prefix if prefix is not None else hash_prefix_from_name(path)).lower()
    if not re.fullmatch(r"[0-9a-f]{1,64}", expected):
        raise ValueError(f"hash prefix must be 1-64 hex digits, got {expected!r}")
    digest = sha256_file(path)
    if not digest.startswith(expected):
        raise ValueError(f"{path}: sha256 {digest} does not start with {expected}; the file is corrupt or "
                         "not the expected one")
    return digest
