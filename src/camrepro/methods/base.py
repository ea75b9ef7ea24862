"""The explanation API shared by every method: one verb, validated inputs, hooks that never outlive a call.

``method = Cls(model, layer)``; ``maps = method(images, targets)`` → Tensor[B, H, W] in [0, 1] on the images'
device (upsampled bilinearly, ``align_corners=False``, then min-max normalised per image);
``method.weights(images, targets)`` → Tensor[B, K] channel coefficients for methods that have them.

Inputs: images are float [B, C, H, W] RGB values in [0, 1] (the network normalises them itself, see
:func:`camrepro.models.with_normalization`), of the model's dtype and channel count; targets are None, an int
(numpy integers too), a sequence of ints, or an integer tensor / numpy array of length B. Anything else is a
TypeError/ValueError naming it, also a model whose forward returns a tuple or dict instead of logits. Methods
that never read pixel values (``range_free``) take ``check_range=False`` for a model with another input range.

During a call the model is put in eval mode and its parameters stop requiring gradients (we only ever
differentiate with respect to activations or inputs, so no graph is built for the layers before the
explained layer); both are restored afterwards, also when the call raises. Gradients are taken with
``torch.autograd.grad``; ``.backward()`` is never called, so the model's ``.grad`` fields are untouched.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from camrepro.methods.validation import (
    TargetsLike, as_logits, check_fits_model, check_images, check_target_range, parse_targets, resolve_layer,
)
from camrepro.tensors import (  # noqa: F401  (EPS, evaluation_mode: part of the API)
    EPS, evaluation_mode, forward_channels_last, normalize_maps, upsample,
)

@dataclass
class Explanation:
    """What a method computes before upsampling: a low-resolution map, and channel weights if it has them.

    ``saliency`` [B, h, w], not yet normalised; ``targets`` [B] the classes explained; ``weights`` [B, K] or
    None. ``all_zero`` [B] bool flags the images whose map is zero everywhere (a CAM whose weighted sum is
    negative at every location, rectified to nothing): their normalised map is all zeros too, which is not a
    map of "no evidence anywhere" one can compare with others, so a study should count or drop them.
    """

    saliency: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor | None = None

    @property
    def all_zero(self) -> torch.Tensor:
        """[B] bool: True where the map's maximum is ≤ 0 (nothing survives the ReLU)."""
        return self.saliency.detach().flatten(1).amax(dim=1) <= 0


PRECISIONS = ("float32", "bf16")


def precision_scope(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Nothing for ``"float32"``; ``torch.autocast`` in bfloat16 on ``device``'s type for ``"bf16"``.

    Autocast runs convolutions and matrix products in bfloat16 and leaves float64 work (DeepLIFT's secant
    slopes, the float64 softmaxes of the metrics) and reductions in their own precision. Opt-in: float32 is
    every method's default, and its results do not depend on this option's existence.
    """
    if precision == "float32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")


def inference_scope(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Eval mode and frozen parameters for the duration of a call; the user's flags are restored after."""
    return evaluation_mode(model, freeze=True)


class Explainer(abc.ABC):
    """Base class of every explanation method.

    Capabilities are class attributes: ``needs_layer`` (explains a convolutional layer), ``needs_gradients``,
    ``has_weights`` (``weights()`` returns channel coefficients), ``forward_passes`` (a formula of the cost in
    passes, for the benchmarks), ``range_free`` (the computation never reads pixel values as such: it does not
    mask, blur or replace pixels, so it can explain a model that takes another input range). Subclasses
    implement :meth:`_explain`.

    Precision: ``precision="float32"`` (default) or ``"bf16"``: the method's passes run under
    ``torch.autocast(device_type=images.device.type, dtype=torch.bfloat16)`` (:func:`precision_scope`), for
    GPUs with bfloat16 units; maps and weights come back in the images' dtype. Tested: on the packaged networks
    the bf16 maps correlate ≥ 0.999 with the float32 maps (CPU autocast; CUDA where a GPU is at hand). A method
    whose result autocast cannot reproduce sets ``autocast_applies = False`` and refuses it, saying why.

    Input range: images must be in [0, 1] (the package's convention, see :mod:`camrepro.tensors`); anything
    else is a ValueError naming :func:`camrepro.models.with_normalization`. A ``range_free`` method accepts
    ``check_range=False`` for a model that takes another range (already-normalised images); a method that
    masks pixels (Score-CAM, Opti-CAM, A-FMI's and the pixel attributions' image references) refuses it.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    needs_layer: ClassVar[bool] = True
    needs_gradients: ClassVar[bool] = False
    has_weights: ClassVar[bool] = False
    forward_passes: ClassVar[str] = ""
    range_free: ClassVar[bool] = False
    # precision="bf16" (torch.autocast) is refused where it cannot give the float32 map (the reason says why)
    autocast_applies: ClassVar[bool] = True
    autocast_refusal: ClassVar[str] = ""

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None, *, check_range: bool = True,
                 precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS} "
                             "('bf16' runs the network under torch.autocast in bfloat16 on the images' device)")
        if precision != "float32" and not self.autocast_applies:
            raise ValueError(f"{self.name or type(self).__name__} cannot run in {precision}: "
                             f"{self.autocast_refusal}")
        self.precision = precision
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(check_range, bool):
            raise TypeError(f"check_range must be a bool, got {type(check_range).__name__}")
        if not check_range and not self.range_free:
            raise ValueError(f"{self.name or type(self).__name__} replaces or masks pixels in [0, 1] pixel space, "
                             "so it needs images in [0, 1] (check_range=False is refused); wrap the model with "
                             "camrepro.models.with_normalization(model, mean, std) and pass unnormalised images")
        self.check_range = check_range
        self.model = model
        if self.needs_layer:
            if layer is None:
                raise ValueError(f"{self.name or type(self).__name__} explains a layer: pass layer= "
                                 "(a dotted module name such as 'features.18', or the module itself)")
            self.layer_name, self.layer = resolve_layer(model, layer)
        else:
            self.layer_name, self.layer = (resolve_layer(model, layer) if layer is not None else (None, None))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, layer={self.layer_name!r})"

    # -- the public verbs ------------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, targets: TargetsLike = None) -> torch.Tensor:
        """Saliency maps [B, H, W] in [0, 1] for ``targets`` (None: each image's predicted class)."""
        explanation = self.explain(images, targets)
        maps = upsample(explanation.saliency.detach().float(), tuple(images.shape[-2:]))
        return normalize_maps(maps)

    def weights(self, images: torch.Tensor, targets: TargetsLike = None) -> torch.Tensor:
        """Channel coefficients [B, K] of the explained layer."""
        if not self.has_weights:
            raise TypeError(f"{self.name} has no channel coefficients (has_weights is False)")
        return self.explain(images, targets).weights.detach()

    def explain(self, images: torch.Tensor, targets: TargetsLike = None) -> Explanation:
        """Validated inputs → :class:`Explanation` (low-resolution saliency, targets, weights, all_zero)."""
        images, parsed = self._validate(images, targets)
        with self._scope(images):
            explanation = self._explain(images, parsed)
        if self.precision != "float32":  # the maps and weights of an autocast run, in the images' dtype
            explanation.saliency = explanation.saliency.to(images.dtype)
            if explanation.weights is not None:
                explanation.weights = explanation.weights.to(images.dtype)
        return explanation

    @contextlib.contextmanager
    def _scope(self, images: torch.Tensor) -> Iterator[None]:
        """:func:`inference_scope`, under :func:`precision_scope` of this method's ``precision``."""
        with inference_scope(self.model), precision_scope(self.precision, images.device):
            yield

    def _validate(self, images: object, targets: TargetsLike) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The checks of every entry point: images (range unless ``check_range=False``; dtype and channels
        against the model's) and targets."""
        hint = (f"; or, if {type(self.model).__name__} takes another input range, pass check_range=False to "
                f"{type(self).__name__}") if self.range_free else ""
        images = check_images(images, unit_range=self.check_range, range_hint=hint)
        check_fits_model(self.model, images)
        return images, parse_targets(targets, images.shape[0], images.device)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """The model's logits on ``images`` (a clear error when the model returns something else), computed on
        channels-last inputs on the CPU where the model takes them (faster convolutions, the same values up to
        rounding: :func:`camrepro.tensors.forward_channels_last`)."""
        return forward_channels_last(lambda x: as_logits(self.model(x), self.model), images, remember=self.model)

    # -- for subclasses ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        """Compute the explanation of validated ``images`` inside :func:`inference_scope`."""

    def _resolve_targets(self, targets: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        logits = as_logits(logits, self.model)
        if logits.dim() != 2:
            raise ValueError(f"the model must return logits of shape [B, classes], got {tuple(logits.shape)}")
        if targets is None:
            return logits.argmax(dim=1)
        return check_target_range(targets, logits.shape[1])

    def _capture(self, images: torch.Tensor, *, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass: (logits, activations of the layer).

        With ``grad=True`` the activations are a leaf that requires grad, so ``autograd.grad(score, acts)``
        back-propagates through the tail only. The network continues from a copy, so an in-place operation
        after the layer (``ReLU(inplace=True)``) cannot overwrite what was captured.
        """
        store: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {self.layer_name!r} returns {type(output).__name__}, not a tensor")
            acts = output.detach().clone().requires_grad_(grad)
            store.append(acts)
            return acts.clone()

        def attempt(x: torch.Tensor) -> torch.Tensor:
            store.clear()   # a channels-last attempt that failed after the layer leaves its capture behind
            with torch.set_grad_enabled(grad):
                return as_logits(self.model(x), self.model)

        handle = self.layer.register_forward_hook(hook)
        try:
            logits = forward_channels_last(attempt, images, remember=self.model)
        finally:
            handle.remove()
        if len(store) != 1:
            raise ValueError(f"layer {self.layer_name!r} ran {len(store)} times in one forward pass; "
                             "explain a module that is called exactly once")
        if store[0].dim() != 4:
            raise ValueError(f"layer {self.layer_name!r} outputs shape {tuple(store[0].shape)}; "
                             "a CAM layer must output feature maps [B, K, h, w]")
        return logits, store[0]


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The logit of each image's target class, [B]."""
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


class ChannelCAM(Explainer):
    """A CAM: saliency = ReLU(Σ_k w_k A_k) with channel coefficients w from :meth:`_channel_weights`."""

    has_weights = True

    @abc.abstractmethod
    def _channel_weights(self, images: torch.Tensor, acts: torch.Tensor, logits: torch.Tensor,
                         targets: torch.Tensor) -> torch.Tensor:
        """Channel coefficients [B, K] from the captured activations (which require grad if needed)."""

    def _captures_gradient(self) -> bool:
        """Whether the capture makes the activations a leaf of the network's own pass (to differentiate it)."""
        return self.needs_gradients

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        logits, acts = self._capture(images, grad=self._captures_gradient())
        targets = self._resolve_targets(targets, logits)
        w = self._channel_weights(images, acts, logits, targets)
        saliency = torch.relu(torch.einsum("bk,bkhw->bhw", w, acts.detach()))
        return Explanation(saliency=saliency, targets=targets, weights=w.detach())
