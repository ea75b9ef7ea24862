"""The **canvas** dataset: Fashion-MNIST items on a larger cluttered canvas, with exact box and mask.

Each sample pastes one 28×28 Fashion-MNIST item (optionally rescaled) at a seeded random position on a
``size``×``size`` canvas. The background is not empty: ``n_clutter`` square patches cut from items of *other*
classes are scattered around it, and low-amplitude uniform noise covers the whole canvas. Clutter is never
placed inside the square where the item was pasted (``regions``), so the class evidence is exactly where the
item is and the ground truth is exact:

* ``masks`` — the item's own non-zero pixels on the canvas (after rescaling);
* ``boxes`` — the tight box of that mask, ``(x0, y0, x1, y1)`` with exclusive ``x1``/``y1``;
* ``regions`` — the pasted square, same convention (contains the box; clutter-free).

Generation is vectorised over samples (10 000 samples of 64×64 take about 2 s on one CPU core) and seeded:
the same parameters always give identical tensors. Results are cached in ``<data root>/canvas/<key>.pt``, ``key``
hashing the parameters and this module's source, written atomically (temporary file + ``os.replace``).

Everything is composed in uint8 grey levels, as Fashion-MNIST itself is (rescaled items are rounded to
levels before their mask is taken); ``images`` gives floats in [0, 1].
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from camrepro.data.fashion_mnist import CLASSES, load_fashion_mnist
from camrepro.data.paths import raw_data_root

ITEM_SIZE = 28
# Rejection rounds for a clutter position outside the item's square; a patch still overlapping after them
# (only possible when the item nearly fills the canvas) is not drawn and its clutter box is -1.
_PLACEMENT_ROUNDS = 64
_SOURCE = Path(__file__)

# The datasets `camrepro data` generates ahead of time (same defaults as make_canvas otherwise).
DEFAULT_CANVAS: dict[str, dict[str, object]] = {
    "train": {"split": "train", "n": 10000, "size": 64, "seed": 0},
    "test": {"split": "test", "n": 2000, "size": 64, "seed": 0},
}


@dataclass
class CanvasSet:
    """A generated canvas dataset (see the module docstring for the meaning of each field).

    ``pixels`` uint8 [N,1,H,W]; ``labels``/``sources`` int64 [N] (class, index of the item in its split);
    ``boxes``/``regions`` int64 [N,4]; ``masks`` bool [N,H,W]; ``clutter_boxes`` int64 [N,K,4] (-1: none).
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    regions: torch.Tensor
    masks: torch.Tensor
    sources: torch.Tensor
    clutter_boxes: torch.Tensor
    params: dict[str, object]
    classes: tuple[str, ...] = CLASSES
    channels: int = 1
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def images(self) -> torch.Tensor:
        """Float images [N,C,H,W] in [0,1] (a new tensor; the 3-channel form repeats the grey channel)."""
        images = self.pixels.float().div_(255.0)
        return images.expand(-1, self.channels, -1, -1) if self.channels != 1 else images

    def dataset(self, channels: int | None = None, with_targets: bool = False) -> CanvasDataset:
        """A torch Dataset over the samples (see :class:`CanvasDataset`)."""
        return CanvasDataset(self, self.channels if channels is None else channels, with_targets)


class CanvasDataset(Dataset):
    """Items ``(image [C,H,W] float in [0,1], label)``, or with ``with_targets`` also ``(box, mask)``.

    Converts one sample at a time from the uint8 store, so training never holds a float copy of the set.
    """

    def __init__(self, canvas: CanvasSet, channels: int = 1, with_targets: bool = False) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.canvas = canvas
        self.channels = channels
        self.with_targets = with_targets

    def __len__(self) -> int:
        return len(self.canvas)

    def __getitem__(self, index: int) -> tuple:
        image = self.canvas.pixels[index].float().div_(255.0)
        if self.channels == 3:
            image = image.expand(3, -1, -1).clone()
        label = int(self.canvas.labels[index])
        if self.with_targets:
            return image, label, self.canvas.boxes[index], self.canvas.masks[index]
        return image, label


def _check_params(split: str, n: int, size: int, scale: tuple[float, float], n_clutter: int,
                  clutter_size: int, noise: float) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    for name, value, low in (("n", n, 1), ("size", size, 1), ("n_clutter", n_clutter, 0),
                             ("clutter_size", clutter_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int ≥ {low}, got {value!r}")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (low, high) with 0 < low ≤ high, got {scale!r}")
    largest = round(ITEM_SIZE * scale[1])
    if largest > size or round(ITEM_SIZE * scale[0]) < 1:
        raise ValueError(f"items scaled by {scale} span up to {largest} px and do not fit a {size}-px canvas")
    if clutter_size > ITEM_SIZE:
        raise ValueError(f"clutter_size {clutter_size} exceeds the {ITEM_SIZE}-px items it is cut from")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise!r}")


def canvas_params(split: str = "train", n: int = 10000, size: int = 64, seed: int = 0, *,
                  scale: tuple[float, float] = (1.0, 1.0), n_clutter: int = 4, clutter_size: int = 8,
                  noise: float = 0.1) -> dict[str, object]:
    """The validated, canonical parameters that define a canvas dataset (and its cache key)."""
    scale = (float(scale[0]), float(scale[1]))
    _check_params(split, n, size, scale, n_clutter, clutter_size, float(noise))
    return {"split": split, "n": n, "size": size, "seed": int(seed), "scale": list(scale),
            "n_clutter": n_clutter, "clutter_size": clutter_size, "noise": float(noise)}


def canvas_key(params: Mapping[str, object]) -> str:
    """16 hex digits of sha256 over the parameters and this module's source code."""
    payload = json.dumps({"params": dict(params), "code": hashlib.sha256(_SOURCE.read_bytes()).hexdigest()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _item_boxes(items: torch.Tensor) -> torch.Tensor:
    """Tight boxes (x0, y0, x1, y1), exclusive ends, of the non-zero pixels of items [N,h,w].

    An all-zero item gets the whole item as its box (Fashion-MNIST has none; the rule keeps boxes defined).
    """
    nonzero = items > 0
    cols, rows = nonzero.any(dim=1), nonzero.any(dim=2)
    height, width = items.shape[-2:]
    x0 = cols.int().argmax(dim=1)
    x1 = width - cols.flip(1).int().argmax(dim=1)
    y0 = rows.int().argmax(dim=1)
    y1 = height - rows.flip(1).int().argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).long()
    whole = torch.tensor([0, 0, width, height])
    return torch.where(cols.any(dim=1)[:, None], boxes, whole)


def _paste_items(items: torch.Tensor, sides: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste each item (resized to ``sides``) at (x, y) on a blank canvas.

    Returns the uint8 canvas [N,size²], the item's non-zero mask [N,size²] and its tight box [N,4].
    """
    n = items.shape[0]
    canvas = torch.zeros(n * size * size, dtype=torch.uint8)
    boxes = torch.zeros(n, 4, dtype=torch.long)
    for side in sides.unique().tolist():
        rows = (sides == side).nonzero().squeeze(1)
        patch = items[rows]
        if side != ITEM_SIZE:
            resized = F.interpolate(patch.unsqueeze(1).float(), size=(side, side), mode="bilinear",
                                    align_corners=False, antialias=True).squeeze(1)
            # Quantised before the mask is taken, so the mask is exactly the pixels the image shows as item.
            patch = resized.round_().clamp_(0, 255).to(torch.uint8)
        offsets = torch.arange(side)
        # Flat indices into the whole [N·size²] canvas: one index_put over a 1-D tensor is the cheapest paste.
        flat = (rows[:, None, None] * (size * size)
                + (y[rows, None, None] + offsets[None, :, None]) * size
                + x[rows, None, None] + offsets[None, None, :])
        canvas.index_put_((flat.reshape(-1),), patch.reshape(-1))
        boxes[rows] = _item_boxes(patch) + torch.stack([x[rows], y[rows], x[rows], y[rows]], dim=1)
    canvas = canvas.reshape(n, size * size)
    # Nothing but the items is on the canvas yet, so its non-zero pixels are exactly the items' masks.
    return canvas, canvas > 0, boxes


def generate_canvas(split: str = "train", n: int = 10000, size: int = 64, seed: int = 0, *,
                    scale: tuple[float, float] = (1.0, 1.0), n_clutter: int = 4, clutter_size: int = 8,
                    noise: float = 0.1, root: str | Path | None = None) -> CanvasSet:
    """Generate a canvas dataset in memory (no cache); see :func:`make_canvas` for the parameters."""
    params = canvas_params(split, n, size, seed, scale=scale, n_clutter=n_clutter,
                           clutter_size=clutter_size, noise=noise)
    fm = load_fashion_mnist(split, root=root)
    if n > len(fm):
        raise ValueError(f"n={n} exceeds the {len(fm)} items of the Fashion-MNIST {split} split")
    generator = torch.Generator().manual_seed(int(seed))

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    # The draws happen in a fixed order; changing it changes every dataset (and the cache key follows the
    # source of this module, so stale caches are not reused).
    sources = torch.randperm(len(fm), generator=generator)[:n]
    labels = fm.labels[sources]
    low, high = params["scale"]
    sides = torch.round(ITEM_SIZE * (low + (high - low) * uniform(n))).long()
    x = (uniform(n) * (size - sides + 1)).long()
    y = (uniform(n) * (size - sides + 1)).long()

    canvas, masks, boxes = _paste_items(fm.images[sources], sides, x, y, size)
    regions = torch.stack([x, y, x + sides, y + sides], dim=1)

    k, p = n_clutter, clutter_size
    clutter_boxes = torch.full((n, k, 4), -1, dtype=torch.long)
    if k > 0:
        # Clutter comes from items of another class, so that no evidence of the label lies outside the box.
        other = (labels[:, None] + torch.randint(1, len(CLASSES), (n, k), generator=generator)) % len(CLASSES)
        by_class = torch.argsort(fm.labels, stable=True)
        counts = torch.bincount(fm.labels, minlength=len(CLASSES))
        if (counts == 0).any():
            raise ValueError(f"clutter needs items of every class, but the {split} split has none of "
                             f"class(es) {(counts == 0).nonzero().squeeze(1).tolist()}")
        starts = torch.cumsum(counts, 0) - counts
        donors = by_class[starts[other] + (uniform(n, k) * counts[other]).long()]
        # Patches are cut from the central part of the donor, where garments have their pixels.
        lo, hi = (ITEM_SIZE - p) // 4, (ITEM_SIZE - p) - (ITEM_SIZE - p) // 4
        sx = lo + (uniform(n, k) * (hi - lo + 1)).long()
        sy = lo + (uniform(n, k) * (hi - lo + 1)).long()

        def overlaps(cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
            return ((cx < (x + sides)[:, None]) & (cx + p > x[:, None])
                    & (cy < (y + sides)[:, None]) & (cy + p > y[:, None]))

        cx = (uniform(n, k) * (size - p + 1)).long()
        cy = (uniform(n, k) * (size - p + 1)).long()
        for _ in range(_PLACEMENT_ROUNDS):
            bad = overlaps(cx, cy)
            if not bad.any():
                break
            cx = torch.where(bad, (uniform(n, k) * (size - p + 1)).long(), cx)
            cy = torch.where(bad, (uniform(n, k) * (size - p + 1)).long(), cy)
        placed = ~overlaps(cx, cy)

        offsets = torch.arange(p)
        src_flat = ((sy[..., None, None] + offsets[:, None]) * ITEM_SIZE
                    + sx[..., None, None] + offsets[None, :])                      # [n,k,p,p]
        values = fm.images.reshape(len(fm), -1)[donors[..., None, None], src_flat]
        values = values * placed[..., None, None]
        dst_flat = ((cy[..., None, None] + offsets[:, None]) * size
                    + cx[..., None, None] + offsets[None, :])
        # amax: overlapping patches combine in a fixed way (plain index assignment with repeated indices
        # leaves the winner unspecified); unplaced patches contribute zeros, which change nothing.
        canvas.scatter_reduce_(1, dst_flat.reshape(n, -1), values.reshape(n, -1), reduce="amax")
        clutter_boxes = torch.where(placed[..., None], torch.stack([cx, cy, cx + p, cy + p], dim=-1),
                                    clutter_boxes)

    levels = round(noise * 255)
    if levels > 0:
        grain = torch.randint(0, levels + 1, canvas.shape, generator=generator, dtype=torch.uint8)
        # Saturating uint8 addition (255 - canvas is the headroom of each pixel).
        canvas.add_(torch.minimum(grain, 255 - canvas))
    pixels = canvas.reshape(n, 1, size, size)
    masks = masks.reshape(n, size, size)
    return CanvasSet(pixels=pixels, labels=labels, boxes=boxes, regions=regions,
                     masks=masks, sources=sources, clutter_boxes=clutter_boxes, params=params)


_FIELDS = ("pixels", "labels", "boxes", "regions", "masks", "sources", "clutter_boxes")


def save_canvas(canvas: CanvasSet, path: str | Path) -> Path:
    """Write ``canvas`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: getattr(canvas, name) for name in _FIELDS}
    payload["params"] = json.dumps(canvas.params, sort_keys=True)
    handle, tmp = tempfile.mkstemp(prefix=f".tmp-{path.stem}-", suffix=".pt", dir=path.parent)
    os.close(handle)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; the cache is as readable as other data
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_canvas(path: str | Path, channels: int = 1) -> CanvasSet:
    """Read a dataset written by :func:`save_canvas`."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    missing = [name for name in (*_FIELDS, "params") if name not in payload]
    if missing:
        raise ValueError(f"{path} is not a canvas dataset file (missing {missing})")
    return CanvasSet(**{name: payload[name] for name in _FIELDS}, params=json.loads(payload["params"]),
                     channels=channels, path=Path(path))


def canvas_cache_dir() -> Path:
    return raw_data_root() / "canvas"


def make_canvas(split: str = "train", n: int = 10000, size: int = 64, seed: int = 0, *,
                scale: tuple[float, float] = (1.0, 1.0), n_clutter: int = 4, clutter_size: int = 8,
                noise: float = 0.1, channels: int = 1, root: str | Path | None = None, cache: bool = True,
                cache_dir: str | Path | None = None) -> CanvasSet:
    """The canvas dataset for these parameters, from the cache or generated (and then cached).

    Args:
        split: Fashion-MNIST split the items come from ("train" or "test").
        n: number of samples (distinct items, drawn without replacement).
        size: canvas side in pixels.
        seed: seed of every random draw.
        scale: (low, high) range of the uniform random scale of the item (side ``round(28·s)``).
        n_clutter: clutter patches per canvas, each ``clutter_size``² pixels, cut from another class's items.
        noise: amplitude of the noise added to every pixel: an integer number of grey levels drawn uniformly
            from 0..round(255·noise), then clipped at 255 (so values move by at most ``noise``).
        channels: 1, or 3 to repeat the grey channel (a view option; not part of the cache key).
        root: folder of the Fashion-MNIST idx files (default: the usual search, see ``fashion_mnist``).
        cache: read/write ``<cache_dir>/<key>.pt``; ``cache_dir`` defaults to ``<data root>/canvas``.
    """
    params = canvas_params(split, n, size, seed, scale=scale, n_clutter=n_clutter, clutter_size=clutter_size,
                           noise=noise)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    path = Path(cache_dir or canvas_cache_dir()) / f"{canvas_key(params)}.pt"
    if cache and path.is_file():
        canvas = load_canvas(path, channels)
        if canvas.params == params:
            return canvas
    canvas = generate_canvas(split, n, size, seed, scale=scale, n_clutter=n_clutter,
                             clutter_size=clutter_size, noise=noise, root=root)
    canvas.channels = channels
    if cache:
        canvas.path = save_canvas(canvas, path)
    return canvas


def default_canvas(name: str = "train", channels: int = 1, cache: bool = True) -> CanvasSet:
    """One of the datasets in ``DEFAULT_CANVAS`` ("train" or "test")."""
    if name not in DEFAULT_CANVAS:
        raise ValueError(f"unknown default canvas {name!r}; choose one of {sorted(DEFAULT_CANVAS)}")
    spec = DEFAULT_CANVAS[name]
    return make_canvas(str(spec["split"]), int(spec["n"]), int(spec["size"]), int(spec["seed"]),
                       channels=channels, cache=cache)
