"""Input checks shared by every explanation method: images, targets and layers, each with a clear error."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
from torch import nn

TargetsLike = None | int | Sequence[int] | torch.Tensor


def check_images(images: object) -> torch.Tensor:
    """A float tensor [B, C, H, W] with finite values; anything else is a TypeError/ValueError naming it."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape [B, C, H, W], got {type(images).__name__}")
    if images.dim() != 4:
        hint = " (add a batch dimension with images.unsqueeze(0))" if images.dim() == 3 else ""
        raise ValueError(f"images must have shape [B, C, H, W], got shape {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor in [0, 1], got dtype {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    return images


def parse_targets(targets: TargetsLike, batch: int, device: torch.device) -> torch.Tensor | None:
    """None, or a LongTensor [B] on ``device``. Range is checked later, once the number of classes is known."""
    if targets is None:
        return None
    if isinstance(targets, bool):
        raise TypeError("targets must be None, an int, a sequence of ints or a LongTensor, got a bool")
    if isinstance(targets, int):
        return torch.full((batch,), targets, dtype=torch.long, device=device)
    if isinstance(targets, torch.Tensor):
        if targets.is_floating_point() or targets.dtype == torch.bool or targets.is_complex():
            raise TypeError(f"targets must be an integer tensor, got dtype {targets.dtype}")
        if targets.dim() == 0:
            return targets.to(device=device, dtype=torch.long).expand(batch).clone()
        if targets.dim() != 1:
            raise ValueError(f"targets must be one class index per image, got shape {tuple(targets.shape)}")
        out = targets.to(device=device, dtype=torch.long)
    elif isinstance(targets, Sequence) and not isinstance(targets, (str, bytes)):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in targets):
            raise TypeError(f"targets must contain ints, got {[type(t).__name__ for t in targets][:5]}")
        out = torch.tensor(list(targets), dtype=torch.long, device=device)
    else:
        raise TypeError(
            f"targets must be None, an int, a sequence of ints or a LongTensor, got {type(targets).__name__}")
    if out.numel() != batch:
        raise ValueError(f"got {out.numel()} targets for a batch of {batch} images")
    return out


def check_target_range(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        bad = targets[(targets < 0) | (targets >= num_classes)].tolist()
        raise ValueError(f"target class {bad[0]} is out of range for a model with {num_classes} outputs")
    return targets


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """(dotted name, module) of ``layer`` inside ``model``; the error lists close names when it is unknown."""
    names = {module: name for name, module in model.named_modules()}
    if isinstance(layer, nn.Module):
        if layer not in names:
            raise ValueError(f"the given {type(layer).__name__} module is not a submodule of {type(model).__name__}")
        return names[layer], layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a dotted module name or an nn.Module, got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        close = difflib.get_close_matches(layer, [n for n in modules if n], n=5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{type(model).__name__} has no layer named {layer!r}{hint}")
    return layer, modules[layer]


def check_positive_int(value: object, name: str) -> int:
    """A positive int for a method parameter such as ``batch_size`` or ``steps``; TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value
