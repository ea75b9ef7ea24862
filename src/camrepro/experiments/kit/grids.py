"""The grid pointing game as the chapters run it: 2×2 grids of photos of four predicted classes, each grid
explained once per quadrant's class; the unit of every grid claim is the grid (its four quadrants averaged),
since the four maps of one grid are not independent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from camrepro import metrics
from camrepro.data.grid import make_grids


@dataclass
class GridTask:
    """``images`` [4G, C, H, W] (each grid once per quadrant), ``targets`` [4G] the quadrant's class,
    ``quadrants`` [4G], ``grids`` [4G] the grid index."""

    images: torch.Tensor
    targets: torch.Tensor
    quadrants: torch.Tensor
    grids: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.targets.numel())


def grid_problem(n_images: int, n_grids: int, where: str = "grids.n") -> str | None:
    """Why ``n_grids`` grids cannot be built from ``n_images`` photos, or None: a grid needs photos of four
    different (predicted) classes, so fewer than four photos can never make one. Checked when the parameters
    are resolved; whether four *classes* are predicted is known only after the predictions."""
    if n_grids > 0 and n_images < 4:
        return (f"{where} = {n_grids} needs at least 4 photos of 4 different classes, but images.n = "
                f"{n_images}")
    return None


def grid_task(images: torch.Tensor, classes: torch.Tensor, n_grids: int, seed: int = 0) -> GridTask:
    """``n_grids`` grids from ``images`` and their (predicted) ``classes`` (see :func:`make_grids`)."""
    grids = make_grids(images.cpu(), classes.cpu(), n_grids, seed=seed)
    g = len(grids)
    return GridTask(images=grids.images.repeat_interleave(4, dim=0), targets=grids.classes.reshape(-1),
                    quadrants=torch.arange(4).repeat(g), grids=torch.arange(g).repeat_interleave(4))


def grid_rows(task: GridTask, maps: torch.Tensor) -> pd.DataFrame:
    """One row per grid map: grid, quadrant, hit (max in the quadrant), energy (share of the map's mass)."""
    pointing = metrics.grid_pointing_game(maps.cpu(), task.quadrants[:maps.shape[0]])
    n = maps.shape[0]
    return pd.DataFrame({"grid": task.grids[:n].numpy(), "quadrant": task.quadrants[:n].numpy(),
                         "hit": np.asarray(pointing.hit, dtype=float),
                         "energy": np.asarray(pointing.energy, dtype=float)})


def per_grid(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Grid rows averaged over the quadrants of each grid (the units of a grid claim), per ``by`` columns."""
    return rows.groupby([*by, "grid"], as_index=False)[["hit", "energy"]].mean()
