"""The chapters' images, from one parameter section: packaged photos, or a folder the reader provides.

Every chapter that explains photos declares ``"images": image_schema(n=16)`` and calls :func:`load`. The
packaged sources (``ai-benchmark``: 100 photos of ImageNet classes without labels; ``skimage``; ``all``)
are held in memory; ``imagenet-val`` (a folder plus a ``<file> <label>`` file) and ``image-folder``
(one sub-folder per class) are read lazily, so the paper profile's 50,000 images never sit in memory at once.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from camrepro.experiments.schema import Param, Schema
from camrepro.data.paths import user_path

PACKAGED = ("ai-benchmark", "skimage", "all")
FOLDERS = ("imagenet-val", "image-folder")
SOURCES = PACKAGED + FOLDERS


def packaged_names(source: str) -> list[str] | None:
    """The names of the packaged photos of ``source`` (listing files, decoding nothing); None where they are
    not installed (loading them then says what to install)."""
    from camrepro.data.photos import photo_files

    try:
        return [name for name, _ in photo_files(source)]
    except FileNotFoundError:
        return None


def count_problem(section: dict[str, object], n: int, what: str) -> str | None:
    """Why ``n`` images (for ``what``) cannot be drawn from a packaged ``images`` section, or None. Folder
    sources are counted when the chapter starts (their inputs are checked then)."""
    if section["source"] not in PACKAGED:
        return None
    names = packaged_names(section["source"])
    if names is not None and n > len(names):
        return f"{what} = {n} but the {section['source']!r} photos are {len(names)}"
    return None


def _folder_needs(section: dict[str, object]) -> str | None:
    source = section["source"]
    if source in FOLDERS and not section.get("root"):
        return f"source {source!r} needs root (the image folder, absolute or relative to the repository root)"
    if source == "imagenet-val" and not section.get("labels"):
        return "source 'imagenet-val' needs labels (a '<file> <label>' text file)"
    if source in PACKAGED and (section.get("root") or section.get("labels")):
        return f"root and labels are read only for the folder sources {FOLDERS}, not for {source!r}"
    return count_problem(section, section["n"], "n")


def image_schema(n: int = 16, size: int = 224, source: str = "ai-benchmark") -> Schema:
    """The ``images`` section: ``source``, ``n`` images drawn with ``seed`` (kept in file order), ``size``
    pixels square; ``root`` / ``labels`` for the folder sources."""
    return Schema("images", {
        "source": Param(source, str, choices=SOURCES),
        "n": Param(n, int, minimum=1),
        "size": Param(size, int, minimum=32),
        "seed": Param(0, int, minimum=0),
        "root": Param(None, str, nullable=True),
        "labels": Param(None, str, nullable=True),
    }, check=_folder_needs)


@dataclass
class ImageSet:
    """``count`` images in [0, 1], their names (unique: the units of every per-photo claim) and labels
    (None for photos without labels); :meth:`batch` reads a range."""

    names: list[str]
    labels: list[int] | None
    _tensor: torch.Tensor | None = None
    _dataset: object | None = None
    _index: list[int] | None = None

    @property
    def count(self) -> int:
        return len(self.names)

    def batch(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        stop = self.count if stop is None else min(stop, self.count)
        if self._tensor is not None:
            return self._tensor[start:stop]
        return torch.stack([self._dataset[i][0] for i in self._index[start:stop]])

    def subset(self, positions: Sequence[int] | None) -> ImageSet:
        """The images at ``positions`` (all of them for None), in that order: a rank's shard of a unit."""
        if positions is None:
            return self
        positions = list(positions)
        labels = None if self.labels is None else [self.labels[p] for p in positions]
        if self._tensor is not None:
            return ImageSet([self.names[p] for p in positions], labels, _tensor=self._tensor[positions])
        return ImageSet([self.names[p] for p in positions], labels, _dataset=self._dataset,
                        _index=[self._index[p] for p in positions])

    def chunks(self, size: int, count: int | None = None) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` ranges of at most ``size`` images over the first ``count`` images."""
        count = self.count if count is None else min(count, self.count)
        for start in range(0, count, size):
            yield start, min(start + size, count)


def among_first(cap: int, positions: Sequence[int] | None, count: int) -> int:
    """How many of the images at ``positions`` (sorted; None = all ``count``) are among the first ``cap``:
    a unit's "first ``cap`` images" in a rank's shard, which are the shard's first that many."""
    if positions is None:
        return max(0, min(cap, count))
    return bisect.bisect_left(list(positions), cap)


def load(section: dict[str, object]) -> ImageSet:
    """The images an ``images`` section describes (see :func:`image_schema`)."""
    from camrepro.data import folders
    from camrepro.data.photos import load_photos

    source, n, size, seed = section["source"], section["n"], section["size"], section["seed"]
    if source in PACKAGED:
        photos = load_photos(source, n=n, size=size, seed=seed)
        if len(photos) < n:
            raise ValueError(f"images.n = {n} but the {source!r} photos are {len(photos)}")
        return ImageSet(names=list(photos.names), labels=None, _tensor=photos.images)
    root = user_path(str(section["root"]))
    if source == "imagenet-val":
        dataset = folders.imagenet_val(root, user_path(str(section["labels"])), size=size)
    else:
        dataset = folders.image_folder(root, size=size)
    if n > len(dataset):
        raise ValueError(f"images.n = {n} but {root} holds {len(dataset)} images")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset), generator=generator)[:n].sort().values.tolist()
    return ImageSet(names=[f"{source}/{dataset.samples[i][0].name}" for i in index],
                    labels=[dataset.samples[i][1] for i in index], _dataset=dataset, _index=index)
