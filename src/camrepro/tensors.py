"""The bottom layer of the package: input checks and tensor helpers that methods, metrics and training share.

Nothing here imports another camrepro module, so every layer above (models, the network tails, methods,
metrics) can use it without an import cycle.

The image convention: images are float tensors [B, C, H, W] of RGB values in [0, 1]; the mean/std
normalisation a network was trained with is the network's own first module
(:func:`camrepro.models.with_normalization`), so that every mask, blur and reference lives in pixel space.
:func:`check_images` enforces the range (beyond :data:`IMAGE_RANGE_TOLERANCE`, which absorbs the rounding of
resizing and colour conversion) unless the caller states that its computation does not depend on it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import weakref
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-8
# Resizing (antialiased bilinear) and colour conversion overshoot [0, 1] by a few ulps; a normalised image is
# off by O(1). Anything between is refused too: it is not an image in [0, 1].
IMAGE_RANGE_TOLERANCE = 1e-4

TargetsLike = None | int | np.integer | Sequence[int] | torch.Tensor | np.ndarray

RANGE_CONVENTION = (
    "images must be RGB values in [0, 1]: the mean/std normalisation belongs inside the network, as its first "
    "module (wrap the model with camrepro.models.with_normalization(model, mean, std) and pass unnormalised "
    "images)")


# ------------------------------------------------------------------------------------------------- images
def check_images(images: object, *, unit_range: bool = True, what: str = "images",
                 range_hint: str = "", batch_letter: str = "B") -> torch.Tensor:
    """A float tensor [B, C, H, W] with finite values, in [0, 1] unless ``unit_range=False``.

    Anything else is a TypeError/ValueError naming the problem; values outside [0, 1] (beyond
    :data:`IMAGE_RANGE_TOLERANCE`) name the convention and :func:`camrepro.models.with_normalization`, plus
    ``range_hint`` (how a caller that allows it turns the check off). ``batch_letter`` names the batch
    dimension in messages (training says [N, C, H, W]).
    """
    layout = f"[{batch_letter}, C, H, W]"
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape {layout}, got {type(images).__name__}")
    if images.dim() != 4:
        hint = " (add a batch dimension with images.unsqueeze(0))" if images.dim() == 3 else ""
        raise ValueError(f"{what} must have shape {layout}, got shape {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise TypeError(f"{what} must be floating point (a floating-point dtype such as torch.float32) in "
                        f"[0, 1], got dtype {images.dtype}; convert 8-bit images with images.float() / 255")
    if images.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch")
    if not images.numel():
        return images
    # one pass over the pixels: a NaN makes both extremes NaN, an infinity makes one of them infinite
    low, high = (float(v) for v in torch.aminmax(images))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{what} contain NaN or infinite values")
    if unit_range:
        if low < -IMAGE_RANGE_TOLERANCE or high > 1 + IMAGE_RANGE_TOLERANCE:
            raise ValueError(f"{what} have values in [{low:.4g}, {high:.4g}], outside [0, 1]; "
                             f"{RANGE_CONVENTION}{range_hint}")
    return images


def _first_float_tensor(model: nn.Module) -> torch.Tensor | None:
    # lazily: this runs on every call of a method, and listing every parameter of a large network costs more
    # than a small network's forward pass at batch 1
    return next((t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()), None)


def _input_channels(model: nn.Module) -> tuple[tuple[int, ...], str] | None:
    """(channel counts the model takes, where that comes from), or None when it cannot tell.

    A module that declares ``accepted_channels`` (a network that adapts grey images itself) is taken at its
    word; otherwise the first module in registration order that fixes the channel count: a mean/std
    normalisation (its mean has one value per channel) or a convolution (``in_channels``)."""
    for name, module in model.named_modules():
        declared = getattr(type(module), "accepted_channels", None)
        if declared is not None:
            accepted = tuple(module.accepted_channels)
            return accepted, f"{type(module).__name__}.accepted_channels is {accepted}"
        mean = getattr(module, "mean", None)
        if type(module).__name__ == "Normalize" and isinstance(mean, torch.Tensor) and mean.dim() == 4:
            return (int(mean.shape[1]),), f"its {name or 'root'} module normalises {int(mean.shape[1])} channels"
        if isinstance(module, nn.modules.conv._ConvNd):
            return (int(module.in_channels),), \
                f"its first convolution {name!r} takes {module.in_channels} channels"
        if isinstance(module, nn.Linear):
            return None  # a network that starts with a linear layer: nothing to say about channels
    return None


def check_fits_model(model: nn.Module, images: torch.Tensor, what: str = "images") -> torch.Tensor:
    """``images`` unchanged when their dtype and channel count are the model's; otherwise a TypeError (dtype) or
    ValueError (channels) naming both sides and the conversion."""
    reference = _first_float_tensor(model)
    if reference is not None and images.dtype != reference.dtype:
        raise TypeError(f"{what} are {images.dtype} but {type(model).__name__}'s parameters are "
                        f"{reference.dtype}; convert one of them (images.to({reference.dtype}) or "
                        f"model.to({images.dtype}))")
    channels = _input_channels(model)
    if channels is not None and images.shape[1] not in channels[0]:
        takes = " or ".join(map(str, channels[0]))
        raise ValueError(f"{what} have {images.shape[1]} channels but {type(model).__name__} takes "
                         f"{takes} ({channels[1]})")
    return images


def as_logits(output: object, model: nn.Module) -> torch.Tensor:
    """The model's output when it is a logits tensor [B, classes]; a TypeError naming the output's type and how
    to wrap the model otherwise."""
    if isinstance(output, torch.Tensor):
        return output
    raise not_logits_error(output, model)


def not_logits_error(output: object, model: nn.Module) -> TypeError:
    """The TypeError for a model whose forward returns ``output`` (a tuple, dict, …) instead of logits."""
    kind = type(output).__name__
    if type(output).__module__.startswith("torch.fx"):  # the traced graph's immutable_dict / immutable_list
        kind = "dict" if isinstance(output, dict) else "tuple"
    if isinstance(output, dict):
        kind += f" with keys {sorted(map(str, output))[:5]}"
    elif isinstance(output, (tuple, list)):
        kind += f" of {len(output)}"
    return TypeError(
        f"{type(model).__name__} returns a {kind}, not a logits tensor [B, classes]; wrap it in a module whose "
        "forward returns the logits alone, e.g. `class Logits(nn.Module): forward(x) = net(x)[0]` (or "
        "net(x)['logits']), and explain that module (layer names gain its attribute's prefix, e.g. 'net.')")


def _submodules(model: nn.Module) -> list[nn.Module]:
    """``list(model.modules())`` in breadth-first order: the same modules (each once), a third of the time of
    the recursive generator, which this pays on every method call."""
    found, seen = [model], {id(model)}
    for module in found:  # the list grows while it is walked
        for child in module._modules.values():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                found.append(child)
    return found


@contextlib.contextmanager
def evaluation_mode(model: nn.Module, *, freeze: bool = False) -> Iterator[nn.Module]:
    """Every module of ``model`` in eval mode for the duration of the block; with ``freeze=True`` every parameter
    also stops requiring gradients. Each module's own ``training`` flag and each parameter's ``requires_grad``
    are restored afterwards, also when the block raises."""
    # One walk over the modules, and only what differs is set: setting a module's attribute goes through
    # nn.Module.__setattr__, and for a network of a few hundred modules switching and restoring them all (or
    # walking them twice, once for the flags, once for the parameters) costs as much as a small batch's forward
    # pass; a model already in eval mode with frozen parameters is then not touched at all.
    modules = _submodules(model)
    flags = [(module, module.training) for module in modules]
    frozen = ([p for module in modules for p in module._parameters.values() if p is not None and p.requires_grad]
              if freeze else [])
    if any(flag for _, flag in flags):
        model.eval()
    try:
        for p in frozen:
            p.requires_grad_(False)
        yield model
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for module, flag in flags:
            if module.training != flag:
                module.training = flag


# ------------------------------------------------------------------------------------------------ targets
def parse_targets(targets: TargetsLike, batch: int, device: torch.device) -> torch.Tensor | None:
    """None, or a LongTensor [B] on ``device``. Range is checked later, once the number of classes is known.

    Accepted: None; an int (numpy integer scalars too), repeated for every image; a sequence of ints; an integer
    torch tensor or numpy array, of shape [] or [B]."""
    if targets is None:
        return None
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError("targets must be None, an int, a sequence of ints or a LongTensor, got a bool")
    if isinstance(targets, (int, np.integer)):
        return torch.full((batch,), int(targets), dtype=torch.long, device=device)
    if isinstance(targets, np.ndarray):
        if targets.dtype.kind not in "iu":
            raise TypeError(f"targets must be an integer tensor, got a numpy array of dtype {targets.dtype}")
        targets = torch.from_numpy(np.array(targets, dtype=np.int64))
    if isinstance(targets, torch.Tensor):
        if targets.is_floating_point() or targets.dtype == torch.bool or targets.is_complex():
            raise TypeError(f"targets must be an integer tensor, got dtype {targets.dtype}")
        if targets.dim() == 0:
            return targets.to(device=device, dtype=torch.long).expand(batch).clone()
        if targets.dim() != 1:
            raise ValueError(f"targets must be one class index per image, got shape {tuple(targets.shape)}")
        out = targets.to(device=device, dtype=torch.long)
    elif isinstance(targets, Sequence) and not isinstance(targets, (str, bytes)):
        if not all(isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)) for t in targets):
            raise TypeError(f"targets must contain ints, got {[type(t).__name__ for t in targets][:5]}")
        out = torch.tensor([int(t) for t in targets], dtype=torch.long, device=device)
    else:
        raise TypeError(
            f"targets must be None, an int, a sequence of ints or a LongTensor, got {type(targets).__name__}")
    if out.numel() != batch:
        raise ValueError(f"got {out.numel()} targets for a batch of {batch} images")
    return out


def check_target_range(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``targets`` when every class index is in [0, num_classes); a ValueError naming the first one that is not."""
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        bad = targets[(targets < 0) | (targets >= num_classes)].tolist()
        raise ValueError(f"target class {bad[0]} is out of range for a model with {num_classes} outputs")
    return targets


def check_positive_int(value: object, name: str) -> int:
    """A positive int for a parameter such as ``batch_size`` or ``steps``; TypeError/ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


# ------------------------------------------------------------------------------------------ map helpers
def normalize_maps(maps: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Per-image min-max to [0, 1]; a constant map becomes all zeros (never NaN)."""
    shape = (-1, *[1] * (maps.dim() - 1))
    lo, hi = torch.aminmax(maps.flatten(1), dim=1)
    lo, hi = lo.view(shape), hi.view(shape)
    return (maps - lo).div_((hi - lo).clamp_min_(eps))  # in place on the new tensor: one pass fewer


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, h, w] → [B, H, W], bilinear with ``align_corners=False`` (as the Opti-CAM protocol specifies)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def gaussian_kernel1d(sigma: float, kernel_size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian weights exp(−d² / 2σ²) for d = −(k−1)/2 … (k−1)/2, summing to 1 (float64)."""
    if (isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1
            or kernel_size % 2 == 0):
        raise ValueError(f"blur kernel_size must be a positive odd int, got {kernel_size!r}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"blur sigma must be a positive number, got {sigma!r}")
    offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    weights = torch.exp(-offsets.square() / (2.0 * sigma**2))
    return weights / weights.sum()


def gaussian_blur(images: torch.Tensor, sigma: float = 5.0, kernel_size: int = 11) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] images in [0, 1], each channel on its own.

    The defaults (σ = 5 px truncated to an 11 × 11 window) are those of the RISE evaluation code, which the
    Opti-CAM insertion protocol uses. Deviation: borders are extended by replicating the edge pixels, where
    RISE pads with zeros and so darkens a 5-pixel frame of the baseline; replication keeps a constant image
    constant and works for images smaller than the kernel.
    """
    images = check_images(images)
    channels = images.shape[1]
    kernel = gaussian_kernel1d(sigma, kernel_size).to(device=images.device, dtype=images.dtype)
    pad = kernel_size // 2
    rows = kernel.view(1, 1, 1, kernel_size).expand(channels, 1, 1, kernel_size)
    cols = kernel.view(1, 1, kernel_size, 1).expand(channels, 1, kernel_size, 1)
    out = F.pad(images, (pad, pad, 0, 0), mode="replicate")
    out = F.conv2d(out, rows, groups=channels)
    out = F.pad(out, (0, 0, pad, pad), mode="replicate")
    return F.conv2d(out, cols, groups=channels)


# ------------------------------------------------------------------------------------------ memory layout
def default_batch_size(device: torch.device) -> int:
    """Network inputs per forward pass for a loop over many copies of 224² images (Score-CAM's masked images,
    integrated gradients' path, insertion and deletion steps, AD/AI/AG): 8 on the CPU, 64 on a GPU.

    Why 8: on the CPU a pass of channels-last inputs is fastest per image at small batches, whose activations
    stay in the cache. Measured interleaved on the 2-core machine (folded copies,
    :mod:`camrepro.models.folded`), ms per image at batch 4 / 8 / 16: MobileNetV2 6.5 / 6.9 / 7.6,
    EfficientNet-Lite0 10.5 / 10.4 / 14.9; a forward and backward pass (Opti-CAM's iteration) at 4 / 8: 26 /
    32 and 32 / 42. Eight keeps the per-call overhead small on machines with more cores.
    """
    return 64 if device.type == "cuda" else 8


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """4-D CPU ``images`` in channels-last memory format (same values, other strides); anything else as is.

    Why: the CPU convolutions of the packaged networks are faster on channels-last inputs (the weights may stay
    contiguous). Measured interleaved on the 2-core machine, 224² photos: a MobileNetV2 forward pass takes
    0.59× the time at batch 16 and 0.91× at batch 1, EfficientNet-Lite0 0.63× and 0.83×; logits differ from
    the contiguous pass by rounding only (≤ 1e-5 on logits of magnitude 30). A forward and a backward pass to the
    input (Opti-CAM's iteration, :func:`camrepro.methods.opti_cam.mask_gradient`, batch 8) takes 0.66× the
    time on MobileNetV2 and 0.80× on EfficientNet-Lite0. Not applied on CUDA, where it was not measured here.
    """
    if images.dim() == 4 and images.device.type == "cpu":
        return images.contiguous(memory_format=torch.channels_last)
    return images


# Forwards (or the models behind them) that refused channels-last strides: a loop over batches pays the failed
# attempt once, not once per batch (a weak set: it keeps no model or closure alive).
_REFUSES_CHANNELS_LAST: weakref.WeakSet = weakref.WeakSet()


def refuses_channels_last(exc: BaseException) -> bool:
    """Whether ``exc`` is the error of a model that reshapes its feature maps with ``.view`` and so cannot take
    channels-last strides ("view size is not compatible with input tensor's size and stride")."""
    return isinstance(exc, RuntimeError) and "view size is not compatible" in str(exc)


def channels_last_unless_refused(images: torch.Tensor, model: object) -> torch.Tensor:
    """:func:`channels_last` ``images``, unless ``model`` refused that layout before (through
    :func:`forward_channels_last` with ``remember=model``): for a loop that calls the model many times."""
    return images if model in _REFUSES_CHANNELS_LAST else channels_last(images)


def forward_channels_last(forward: Callable[..., torch.Tensor], *tensors: torch.Tensor,
                          remember: object = None) -> torch.Tensor:
    """``forward(*tensors)`` with the tensors in :func:`channels_last` format.

    A model that cannot take channels-last strides (:func:`refuses_channels_last`) is run on the tensors as
    given instead, so the layout is an optimisation that never makes a call fail. ``remember``: the object
    whose refusal is remembered (default ``forward`` itself; pass the model when ``forward`` is a closure made
    per call), so later calls skip the failed attempt. The layout conversion is differentiable: gradients with
    respect to the given tensors come back in their own layout.
    """
    key = forward if remember is None else remember
    if key not in _REFUSES_CHANNELS_LAST:
        try:
            return forward(*(channels_last(t) for t in tensors))
        except RuntimeError as exc:
            if not refuses_channels_last(exc):
                raise
            _REFUSES_CHANNELS_LAST.add(key)
    return forward(*tensors)
