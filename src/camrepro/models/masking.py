"""The forward pass of a masked image, in pixel space (default) or in normalised space."""

from __future__ import annotations

import torch
from torch import nn

from camrepro.models.normalize import find_normalize

SPACES = ("pixel", "normalized")


def masked_forward(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, space: str = "pixel") -> torch.Tensor:
    """Logits of ``images`` multiplied by ``masks``.

    images: [B, C, H, W] in [0, 1]; masks: [B, H, W] or [B, 1, H, W], broadcast over channels.
    ``space="pixel"`` multiplies the [0, 1] image, so masked pixels are black (the Opti-CAM protocol);
    ``space="normalized"`` multiplies the output of the model's :class:`Normalize` module, so masked pixels
    become the dataset mean (the convention of most public CAM evaluation code).
    """
    if masks.dim() == 3:
        masks = masks.unsqueeze(1)
    if masks.dim() != 4 or masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"masks of shape {tuple(masks.shape)} do not match images of shape {tuple(images.shape)}")
    if space == "pixel":
        return model(images * masks)
    if space == "normalized":
        handle = find_normalize(model).register_forward_hook(lambda _m, _i, out: out * masks)
        try:
            return model(images)
        finally:
            handle.remove()
    raise ValueError(f"unknown masking space {space!r}; expected one of {SPACES}")
