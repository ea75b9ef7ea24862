"""The **grid** dataset for the grid pointing game (Böhle et al., CVPR 2021, "Convolutional Dynamic
Alignment Networks", Sec. 5.2): 2×2 grids of four photos of different classes.

Each grid is the size of the model's input: four photos downscaled to half the height and width, placed at
quadrants 0 = top-left, 1 = top-right, 2 = bottom-left, 3 = bottom-right. A saliency map for the class of one
quadrant should put its mass in that quadrant. The labels are given by the caller, typically the classes a
model predicts on the photos (the packaged photos have no ground-truth labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass
class GridSet:
    """``images`` [G,C,H,W]; ``classes`` int64 [G,4] label per quadrant (all different within a grid);
    ``sources`` int64 [G,4] index of each quadrant's photo in the input batch."""

    images: torch.Tensor
    classes: torch.Tensor
    sources: torch.Tensor

    def __len__(self) -> int:
        return int(self.classes.shape[0])


def downscale_half(images: torch.Tensor) -> torch.Tensor:
    """Halve height and width by averaging each 2×2 block (area interpolation at an exact factor of 2)."""
    if images.dim() != 4:
        raise ValueError(f"images must be [N,C,H,W], got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(f"height and width must be even to halve exactly, got {height}×{width}")
    return F.avg_pool2d(images, kernel_size=2)


def quadrant_boxes(height: int, width: int) -> torch.Tensor:
    """Boxes (x0, y0, x1, y1), exclusive ends, of the four quadrants of an even ``height``×``width`` grid."""
    if height <= 0 or width <= 0 or height % 2 or width % 2:
        raise ValueError(f"grid size must be positive and even, got {height}×{width}")
    h, w = height // 2, width // 2
    return torch.tensor([[0, 0, w, h], [w, 0, width, h], [0, h, w, height], [w, h, width, height]])


def tile(quarters: torch.Tensor) -> torch.Tensor:
    """Assemble [G,4,C,h,w] quarter images into [G,C,2h,2w] grids in quadrant order."""
    if quarters.dim() != 5 or quarters.shape[1] != 4:
        raise ValueError(f"quarters must be [G,4,C,h,w], got shape {tuple(quarters.shape)}")
    top = torch.cat([quarters[:, 0], quarters[:, 1]], dim=-1)
    bottom = torch.cat([quarters[:, 2], quarters[:, 3]], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def make_grids(images: torch.Tensor, labels: torch.Tensor, n_grids: int, seed: int = 0) -> GridSet:
    """Build ``n_grids`` 2×2 grids from ``images`` [N,C,H,W] (H, W even) with ``labels`` [N].

    Per grid: four distinct classes drawn uniformly from the classes present, in a random quadrant order,
    then one photo of each class drawn uniformly among the photos with that label. Photos may recur across
    grids. Seeded: the same inputs give the same grids.
    """
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("images and labels must be tensors")
    if images.dim() != 4:
        raise ValueError(f"images must be [N,C,H,W], got shape {tuple(images.shape)}")
    labels = labels.reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if isinstance(n_grids, bool) or not isinstance(n_grids, int) or n_grids <= 0:
        raise ValueError(f"n_grids must be a positive int, got {n_grids!r}")
    labels = labels.to("cpu", torch.long)
    distinct = labels.unique()
    if len(distinct) < 4:
        raise ValueError(f"a grid needs photos of 4 different classes; the labels hold only "
                         f"{len(distinct)} distinct class(es): {distinct.tolist()}")
    generator = torch.Generator().manual_seed(int(seed))
    # Four distinct classes per grid: the first four of a random permutation of the classes present.
    picks = torch.rand(n_grids, len(distinct), generator=generator).argsort(dim=1)[:, :4]
    classes = distinct[picks]
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(torch.searchsorted(distinct, labels), minlength=len(distinct))
    starts = torch.cumsum(counts, 0) - counts
    offsets = (torch.rand(n_grids, 4, generator=generator) * counts[picks]).long()
    sources = order[starts[picks] + offsets]
    quarters = downscale_half(images[sources.reshape(-1).to(images.device)])
    grids = tile(quarters.reshape(n_grids, 4, *quarters.shape[1:]))
    return GridSet(images=grids, classes=classes, sources=sources)
