"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; MIT licence) read from its original idx files.

Where the files are looked for, in order: the ``root`` argument (only there, when given),
``$CAMREPRO_FASHION_MNIST``, ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``) and
``<data root>/FashionMNIST/raw`` (where torchvision's downloader puts them). Nothing downloads unless
``download=True`` is passed explicitly.

The idx format (LeCun et al., the MNIST page): a 4-byte big-endian magic number ``0x00 0x00 <type> <ndim>``,
``ndim`` big-endian int32 dimension sizes, then the data in C order, big-endian.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from camrepro.data.paths import raw_data_root

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "CAMREPRO_FASHION_MNIST"
# split → (images file, labels file) without the .gz suffix
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

# idx type code → numpy dtype (big-endian for the multi-byte types).
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, expected_magic: int | None = None) -> torch.Tensor:
    """Decode the bytes of an (uncompressed) idx file into a tensor of its type and shape.

    Raises ValueError on a bad magic number, an unknown type code, or a payload whose length does not match
    the header.
    """
    if len(data) < 4:
        raise ValueError(f"idx data too short for a header: {len(data)} bytes")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"idx magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"idx magic number 0x{magic:08x} must start with two zero bytes")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"unknown idx type code 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"idx header declares {ndim} dimensions but the data has only {len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"idx payload has {len(data) - header} bytes, the header {shape} of {dtype} "
                         f"needs {expected}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def read_idx(path: str | Path, expected_magic: int | None = None) -> torch.Tensor:
    """Read an idx file, gzip-compressed or not (recognised by its content, not its name)."""
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    try:
        return parse_idx(raw, expected_magic)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def write_idx(path: str | Path, tensor: torch.Tensor) -> Path:
    """Write ``tensor`` as an idx file, gzip-compressed when ``path`` ends in ``.gz`` (inverse of read_idx)."""
    codes = {np.dtype(dtype).newbyteorder("=").str: code for code, dtype in _IDX_TYPES.items()}
    array = tensor.detach().cpu().numpy()
    code = codes.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise TypeError(f"idx has no type for dtype {tensor.dtype}")
    if array.ndim > 255:
        raise ValueError(f"idx supports at most 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    path = Path(path)
    # mtime=0: the same tensor always gives the same bytes.
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


@dataclass
class FashionMNIST:
    """One split: ``images`` uint8 [N,28,28], ``labels`` int64 [N], ``classes`` the 10 class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    split: str
    folder: Path

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _split_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _has_split(folder: Path, split: str) -> bool:
    images, labels = SPLITS[split]
    return _split_file(folder, images) is not None and _split_file(folder, labels) is not None


def candidate_folders(root: str | Path | None = None) -> list[Path]:
    """The folders searched for the idx files, in order (only ``root`` when it is given)."""
    if root is not None:
        return [Path(root)]
    folders = []
    if os.environ.get(ENV_VAR):
        folders.append(Path(os.environ[ENV_VAR]))
    folders += [DEBIAN_DIR, raw_data_root() / "FashionMNIST" / "raw"]
    return folders


def find_folder(split: str = "train", root: str | Path | None = None) -> Path:
    """The first candidate folder that holds both idx files of ``split``; FileNotFoundError otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; choose 'train' or 'test'")
    folders = candidate_folders(root)
    for folder in folders:
        if _has_split(folder, split):
            return folder
    images, labels = SPLITS[split]
    raise FileNotFoundError(
        f"Fashion-MNIST {split} files ({images}.gz, {labels}.gz) not found in "
        f"{', '.join(str(f) for f in folders)}. Run `make data`, or `apt-get install dataset-fashion-mnist`, "
        f"or point ${ENV_VAR} at a folder holding them, or pass download=True where online.")


@functools.lru_cache(maxsize=4)
def _read_split(images_path: Path, labels_path: Path,
                mtimes: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    # ``mtimes`` is part of the cache key so that a replaced file is read again.
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: images are {tuple(images.shape[1:])}, expected 28×28")
    # No check against 60000/10000: read_idx already rejects truncated files, and small files of the same
    # format (tests, subsets) are legitimate.
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_path}, {labels_path}: {images.shape[0]} images but "
                         f"{labels.shape[0]} labels")
    if int(labels.max()) >= len(CLASSES):
        raise ValueError(f"{labels_path}: label {int(labels.max())} outside 0..{len(CLASSES) - 1}")
    return images, labels.long()


def _download(split: str) -> Path:
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    root = raw_data_root()
    TorchvisionFashionMNIST(root=str(root), train=split == "train", download=True)
    return root / "FashionMNIST" / "raw"


def load_fashion_mnist(split: str = "train", root: str | Path | None = None,
                       download: bool = False) -> FashionMNIST:
    """Load a Fashion-MNIST split as uint8 images [N,28,28], int64 labels [N] and the class names.

    ``download=True`` falls back to torchvision's downloader (into ``<data root>/FashionMNIST/raw``) when no
    local copy exists; the default never touches the network.
    """
    try:
        folder = find_folder(split, root)
    except FileNotFoundError:
        if not download:
            raise
        folder = _download(split)
    images_stem, labels_stem = SPLITS[split]
    images_path = _split_file(folder, images_stem)
    labels_path = _split_file(folder, labels_stem)
    if images_path is None or labels_path is None:
        raise FileNotFoundError(f"Fashion-MNIST {split} files are missing from {folder} after download")
    mtimes = (images_path.stat().st_mtime, labels_path.stat().st_mtime)
    images, labels = _read_split(images_path.resolve(), labels_path.resolve(), mtimes)
    # Clones: callers may modify what they get without corrupting the in-memory cache.
    return FashionMNIST(images=images.clone(), labels=labels.clone(), classes=CLASSES, split=split,
                        folder=folder)
