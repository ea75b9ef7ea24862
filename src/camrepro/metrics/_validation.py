"""Checks shared by every metric: what a batch of images, saliency maps, targets or boxes must look like.

Each function returns the input as a torch tensor (numpy arrays are converted) or raises a ``TypeError`` /
``ValueError`` whose message names the argument and the problem.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from camrepro.tensors import check_fits_model, check_images  # noqa: F401  (the metrics' image checks)

# Bilinear upsampling and min-max normalisation can overshoot [0, 1] by a rounding error; such maps are
# accepted and clamped, anything further outside is a caller's bug and raises.
MAP_RANGE_TOLERANCE = 1e-5

ArrayLike = torch.Tensor | np.ndarray


def as_tensor(value: object, name: str) -> torch.Tensor:
    """``value`` as a torch tensor; numpy arrays are converted (sharing memory when writable), anything else raises."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        # Read-only arrays (pandas columns, np.load results) are copied: torch cannot share read-only memory.
        array = np.ascontiguousarray(value)
        return torch.from_numpy(array if array.flags.writeable else array.copy())
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def as_float_tensor(value: object, name: str) -> torch.Tensor:
    """A real-valued tensor (integer or boolean input is promoted to the default float dtype)."""
    tensor = as_tensor(value, name)
    if tensor.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    return tensor


def check_maps(maps: object, name: str = "maps", *, shape: Sequence[int] | None = None) -> torch.Tensor:
    """Saliency maps [B, H, W] with finite values in [0, 1] (rounding overshoot clamped).

    ``shape``, when given, is the required (B, H, W).
    """
    tensor = as_float_tensor(maps, name)
    if tensor.dim() != 3:
        raise ValueError(f"{name} must have shape [B, H, W], got {tuple(tensor.shape)}")
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)})")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    low, high = float(tensor.min()), float(tensor.max())
    if low < -MAP_RANGE_TOLERANCE or high > 1 + MAP_RANGE_TOLERANCE:
        raise ValueError(f"{name} must have values in [0, 1], got values in [{low:.6g}, {high:.6g}]")
    return tensor.clamp(0.0, 1.0)


def check_targets(targets: object, batch: int, device: torch.device) -> torch.Tensor:
    """Class indices as a LongTensor [batch] on ``device``; an int is repeated for every image.

    The upper bound is checked by :func:`check_target_range` once the number of classes is known.
    """
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError("targets must be class indices, got a bool")
    if isinstance(targets, (int, np.integer)):
        tensor = torch.full((batch,), int(targets), dtype=torch.long)
    elif isinstance(targets, (torch.Tensor, np.ndarray)):
        tensor = as_tensor(targets, "targets")
        if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
            raise TypeError(f"targets must be an integer tensor (LongTensor), got dtype {tensor.dtype}")
        tensor = tensor.long()
    elif isinstance(targets, Sequence) and not isinstance(targets, str):
        if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in targets):
            raise TypeError("targets must be a sequence of ints")
        tensor = torch.tensor([int(t) for t in targets], dtype=torch.long)
    else:
        raise TypeError(
            f"targets must be an int, a sequence of ints or a LongTensor, got {type(targets).__name__}"
        )
    if tensor.dim() != 1 or tensor.shape[0] != batch:
        raise ValueError(
            f"targets must have shape [{batch}] (one class per image), got {tuple(tensor.shape)}"
        )
    if bool((tensor < 0).any()):
        raise ValueError(f"targets must be non-negative class indices, got {tensor.tolist()}")
    return tensor.to(device)


def check_target_range(targets: torch.Tensor, num_classes: int) -> None:
    """Every target is a valid column of logits with ``num_classes`` columns."""
    if bool((targets >= num_classes).any()):
        raise ValueError(
            f"targets must be < {num_classes} (the model has {num_classes} classes), "
            f"got max {int(targets.max())}"
        )


def check_batch_size(batch_size: object) -> int:
    """A positive int."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def regions_to_masks(
    regions: object, batch: int, height: int, width: int, device: torch.device
) -> torch.Tensor:
    """Ground-truth regions as boolean masks [B, H, W].

    ``regions`` is either masks [B, H, W] (bool, or numbers in {0, 1}) or boxes [B, 4] given as
    ``(x0, y0, x1, y1)`` in pixel units, x along the width and y along the height, **inclusive-exclusive**:
    pixel (row r, column c) is inside when ``x0 <= c < x1`` and ``y0 <= r < y1`` (so ``(0, 0, W, H)`` is the
    whole image). Boxes reaching outside the image are clipped; a region with no pixel in the image raises.
    """
    tensor = as_tensor(regions, "masks_or_boxes")
    if tensor.dim() == 2 and tensor.shape == (batch, 4):
        boxes = tensor.to(device=device, dtype=torch.float64)
        if not bool(torch.isfinite(boxes).all()):
            raise ValueError("boxes contain NaN or infinite coordinates")
        x0, y0, x1, y1 = boxes.unbind(dim=1)
        if bool((x1 <= x0).any()) or bool((y1 <= y0).any()):
            raise ValueError("boxes must satisfy x0 < x1 and y0 < y1 (format x0, y0, x1, y1)")
        rows = torch.arange(height, device=device, dtype=torch.float64).view(1, height, 1)
        cols = torch.arange(width, device=device, dtype=torch.float64).view(1, 1, width)
        masks = (
            (cols >= x0.view(-1, 1, 1))
            & (cols < x1.view(-1, 1, 1))
            & (rows >= y0.view(-1, 1, 1))
            & (rows < y1.view(-1, 1, 1))
        )
    elif tensor.dim() == 3:
        if tuple(tensor.shape) != (batch, height, width):
            raise ValueError(
                f"masks must have shape {(batch, height, width)} like the maps, got {tuple(tensor.shape)}"
            )
        if tensor.dtype != torch.bool:
            if not bool(((tensor == 0) | (tensor == 1)).all()):
                raise ValueError("masks must be boolean or contain only 0 and 1")
            tensor = tensor != 0
        masks = tensor.to(device)
    else:
        raise ValueError(
            f"masks_or_boxes must be boxes [{batch}, 4] or masks [{batch}, {height}, {width}], "
            f"got shape {tuple(tensor.shape)}"
        )
    empty = (~masks.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"ground-truth region of image(s) {empty} covers no pixel of the {height}x{width} map"
        )
    return masks
