"""Per-image metric tables: the units every faithfulness claim is decided on.

The per-image terms are the metrics of :mod:`camrepro.metrics` evaluated on one image at a time (AD, AI
and AG of a single image are its term of the mean), so the chapters never restate a metric's formula, and
the mean of a column is exactly the metric over the images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from camrepro import metrics

HIGHER_IS_BETTER = {"AD": False, "AI": True, "AG": True, "insertion": True, "deletion": False,
                    "grid_hit": True, "grid_energy": True}


def drop_increase_gain_per_image(p: np.ndarray, o: np.ndarray) -> pd.DataFrame:
    """AD, AI, AG (percent) of each image from its probabilities on the image (p) and the masked image (o)."""
    p, o = np.asarray(p, dtype=np.float64), np.asarray(o, dtype=np.float64)
    rows = [{"AD": metrics.average_drop(p[i:i + 1], o[i:i + 1]),
             "AI": metrics.average_increase(p[i:i + 1], o[i:i + 1]),
             "AG": metrics.average_gain(p[i:i + 1], o[i:i + 1])} for i in range(p.size)]
    return pd.DataFrame(rows, columns=["AD", "AI", "AG"])


def faithfulness_rows(net: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                      names: Sequence[str], *, space: str = "pixel", batch_size: int | None = None) -> pd.DataFrame:
    """One row per image: image, p, o, AD, AI, AG (pixel-space masking by default)."""
    p, o = metrics.masked_probabilities(net, images, maps.to(images.device), targets, space=space,
                                        batch_size=batch_size)
    table = drop_increase_gain_per_image(p.numpy(), o.numpy())
    table.insert(0, "o", o.numpy())
    table.insert(0, "p", p.numpy())
    table.insert(0, "image", list(names))
    return table


def insertion_deletion_rows(net: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                            names: Sequence[str], *, steps: int, batch_size: int | None = None) -> pd.DataFrame:
    """One row per image: image, insertion AUC, deletion AUC (the metrics' defaults for the baselines)."""
    maps = maps.to(images.device)
    out = {"image": list(names)}
    for mode in ("insertion", "deletion"):
        out[mode] = metrics.insertion_deletion(net, images, maps, targets, mode=mode, steps=steps,
                                               batch_size=batch_size)["auc_per_image"]
    return pd.DataFrame(out)


def paired(table: pd.DataFrame, measure: str, a: str, b: str, *, by: str = "method",
           unit: str = "image") -> pd.DataFrame:
    """The rows of ``a`` and ``b`` on the units both were measured on: columns ``unit, a, b``.

    The comparison of two methods uses only the images that both were run on, so a method run on fewer
    images is compared on those; the n of the result says how many.
    """
    wide = table[table[by].isin([a, b])].pivot_table(index=unit, columns=by, values=measure, aggfunc="first")
    if a not in wide or b not in wide:
        return pd.DataFrame(columns=[unit, a, b])
    return wide[[a, b]].dropna().reset_index()
