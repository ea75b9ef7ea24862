"""User-provided image folders for the ``paper`` profile (ImageNet validation, CIFAR/STL-10 exports, …).

Two layouts, both loaded lazily (one file per item) through :func:`imagenet_preprocess`:

* :func:`image_folder` — an ImageFolder tree, ``root/<class name>/<image>``; classes are the sub-folder names
  in sorted order, labels their indices.
* :func:`imagenet_val` — a flat folder of images plus a text file of ``<file name> <integer label>`` lines
  (blank lines and lines starting with ``#`` are ignored), the usual form of the ILSVRC2012 validation set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from camrepro.data.transforms import imagenet_preprocess

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class ImageFileDataset(Dataset):
    """``(image [3,H,W] float in [0,1], label)`` pairs read from ``samples`` (path, label) on access."""

    def __init__(self, samples: list[tuple[Path, int]], classes: list[str],
                 transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.samples = samples
        self.classes = classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            return self.transform(image), label

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _existing_folder(root: str | Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist; {what}")
    return root


def image_folder(root: str | Path, size: int = 224) -> ImageFileDataset:
    """An ImageFolder-style tree ``root/<class>/<image>`` as a lazily-loading dataset."""
    what = ("put one sub-folder per class in it, each holding that class's images "
            f"({', '.join(IMAGE_EXTENSIONS)})")
    root = _existing_folder(root, what)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"data folder {root} has no class sub-folders; {what}")
    samples = [(path, label) for label, name in enumerate(classes)
               for path in sorted((root / name).rglob("*")) if _is_image(path)]
    if not samples:
        raise FileNotFoundError(f"no image files under {root}; {what}")
    return ImageFileDataset(samples, classes, imagenet_preprocess(size))


def read_labels_file(labels_file: str | Path) -> list[tuple[str, int]]:
    """``(file name, label)`` pairs from ``<file name> <integer label>`` lines; ValueError names a bad line."""
    labels_file = Path(labels_file)
    if not labels_file.is_file():
        raise FileNotFoundError(f"labels file {labels_file} does not exist; it must hold one "
                                "'<file name> <integer label>' line per image")
    entries: list[tuple[str, int]] = []
    seen: set[str] = set()
    for number, line in enumerate(labels_file.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{labels_file}:{number}: expected '<file name> <integer label>', got {text!r}")
        name, label = parts[0], int(parts[1])
        if label < 0:
            raise ValueError(f"{labels_file}:{number}: label {label} is negative")
        if name in seen:
            raise ValueError(f"{labels_file}:{number}: {name!r} is listed twice")
        seen.add(name)
        entries.append((name, label))
    if not entries:
        raise ValueError(f"labels file {labels_file} lists no images")
    return entries


def imagenet_val(root: str | Path, labels_file: str | Path, size: int = 224) -> ImageFileDataset:
    """A flat folder of images labelled by ``labels_file``, as a lazily-loading dataset.

    Every listed file must exist (checked up front, so a long run does not fail midway); images in the
    folder that the file does not list are ignored. ``classes`` are the label numbers as strings.
    """
    root = _existing_folder(root, "put the validation images in it (flat, no sub-folders) and pass a labels "
                                  "file of '<file name> <integer label>' lines")
    entries = read_labels_file(labels_file)
    missing = [name for name, _ in entries if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) listed in {labels_file} are not in {root}, "
                                f"e.g. {missing[:3]}")
    samples = [(root / name, label) for name, label in entries]
    classes = [str(label) for label in range(max(label for _, label in entries) + 1)]
    return ImageFileDataset(samples, classes, imagenet_preprocess(size))
