"""Input normalisation as the network's first module, so that every mask lives in [0, 1] pixel space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; the first module of every network :func:`camrepro.models.load` returns.

    Keeping normalisation inside the network means images, masks and saliency maps are all in [0, 1] pixel
    space, as in the Opti-CAM protocol (masked pixels are black), and :func:`masked_forward` can still mask in
    normalised space by hooking this module.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={tuple(round(v, 4) for v in self.mean.flatten().tolist())}, " \
               f"std={tuple(round(v, 4) for v in self.std.flatten().tolist())}"


def find_normalize(model: nn.Module) -> Normalize:
    """The model's :class:`Normalize` module; a clear error when it has none."""
    for module in model.modules():
        if isinstance(module, Normalize):
            return module
    raise ValueError(
        f"{type(model).__name__} has no camrepro.models.Normalize module, so it cannot be masked in normalised "
        "space; wrap it with camrepro.models.with_normalization(model, mean, std) or use space='pixel'"
    )
