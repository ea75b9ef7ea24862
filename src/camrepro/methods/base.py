"""The explanation API shared by every method: one verb, validated inputs, hooks that never outlive a call.

``method = Cls(model, layer)``; ``maps = method(images, targets)`` → Tensor[B, H, W] in [0, 1] on the images'
device (upsampled bilinearly, ``align_corners=False``, then min-max normalised per image);
``method.weights(images, targets)`` → Tensor[B, K] channel coefficients for methods that have them.

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
import torch.nn.functional as F
from torch import nn

from camrepro.methods.validation import (
    TargetsLike, check_images, check_target_range, parse_targets, resolve_layer,
)

EPS = 1e-8


def normalize_maps(maps: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Per-image min-max to [0, 1]; a constant map becomes all zeros (never NaN)."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    hi = flat.max(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    return (maps - lo) / (hi - lo).clamp_min(eps)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, h, w] → [B, H, W], bilinear with ``align_corners=False`` (as the Opti-CAM protocol specifies)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


@dataclass
class Explanation:
    """What a method computes before upsampling: a low-resolution map, and channel weights if it has them."""

    saliency: torch.Tensor                 # [B, h, w], not yet normalised
    targets: torch.Tensor                  # [B] the classes explained
    weights: torch.Tensor | None = None    # [B, K]


@contextlib.contextmanager
def inference_scope(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration of a call; the user's flags are restored after."""
    was_training = {m: m.training for m in model.modules()}
    requires = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in requires:
            p.requires_grad_(False)
        yield
    finally:
        for m, flag in was_training.items():
            m.training = flag
        for p, flag in requires:
            p.requires_grad_(flag)


class Explainer(abc.ABC):
    """Base class of every explanation method.

    Capabilities are class attributes: ``needs_layer`` (explains a convolutional layer), ``needs_gradients``,
    ``has_weights`` (``weights()`` returns channel coefficients), ``forward_passes`` (a formula of the cost in
    passes, for the benchmarks). Subclasses implement :meth:`_explain`.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    needs_layer: ClassVar[bool] = True
    needs_gradients: ClassVar[bool] = False
    has_weights: ClassVar[bool] = False
    forward_passes: ClassVar[str] = ""

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
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
        """Validated inputs → :class:`Explanation` (low-resolution saliency, targets, weights)."""
        images = check_images(images)
        parsed = parse_targets(targets, images.shape[0], images.device)
        with inference_scope(self.model):
            return self._explain(images, parsed)

    # -- for subclasses ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        """Compute the explanation of validated ``images`` inside :func:`inference_scope`."""

    def _resolve_targets(self, targets: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
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

        handle = self.layer.register_forward_hook(hook)
        try:
            with torch.set_grad_enabled(grad):
                logits = self.model(images)
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

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        logits, acts = self._capture(images, grad=self.needs_gradients)
        targets = self._resolve_targets(targets, logits)
        w = self._channel_weights(images, acts, logits, targets)
        saliency = torch.relu(torch.einsum("bk,bkhw->bhw", w, acts.detach()))
        return Explanation(saliency=saliency, targets=targets, weights=w.detach())
