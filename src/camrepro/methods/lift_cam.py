"""LIFT-CAM (Jung & Oh, ICCV 2021): CAM coefficients as DeepLIFT approximations of the maps' SHAP values."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from camrepro.methods.base import ChannelCAM, target_scores
from camrepro.methods.deeplift_rules import (
    Attribution, broadcast_reference, check_reproduces, deeplift, plan_for_layer,
)
from camrepro.methods.references import (
    DEFAULT_BLUR_SIGMA, ReferenceLike, check_blur_sigma, check_noise_seed, check_reference, make_reference,
)
from camrepro.methods.validation import TargetsLike


@dataclass
class LiftContributions:
    """Everything LIFT-CAM computes for a batch.

    ``contributions`` [B, K, h, w]: DeepLIFT contribution of each activation to the target output;
    ``coefficients`` [B, K]: their spatial sums φ_k; ``activations`` A and ``reference_activations`` A₀
    [B, K, h, w]; ``output`` and ``reference_output`` [B]: F_c(A) and F_c(A₀) (so that
    ``coefficients.sum(1) ≈ output − reference_output``); ``targets`` [B].
    """

    contributions: torch.Tensor
    coefficients: torch.Tensor
    activations: torch.Tensor
    reference_activations: torch.Tensor
    output: torch.Tensor
    reference_output: torch.Tensor
    targets: torch.Tensor


class LIFTCAM(ChannelCAM):
    """LIFT-CAM: φ_k = Σ_ij C_{A_kij → y_c}, the DeepLIFT-Rescale contributions of the activation map A_k to
    the target logit through the tail F after the layer, with an all-zero reference; map = ReLU(Σ_k φ_k A_k).

    Paper: H. Jung and Y. Oh, "Towards Better Explanations of Class Activation Mapping", ICCV 2021, Sec. 3.3,
    Eq. (9)-(10): the SHAP value of A_k in the game v(S) = F_c(A_S) (absent maps set to zero) is approximated
    by the DeepLIFT contributions of its activations, which satisfy completeness Σ_k φ_k = F_c(A) − F_c(0).
    With a linear tail (global average pooling + fully connected) φ_k = w_ck · mean(A_k), the exact SHAP
    value.

    The tail is derived from the model by :func:`camrepro.methods.tail.extract_tail` (or given as ``tail=``);
    every operation in it gets a rule from :mod:`camrepro.methods.deeplift_rules` — Rescale for every
    element-wise activation (ReLU, ReLU6, hard-swish, …), a bounded rule for max-pooling, the gradient for
    linear operations — and any other operation is an error naming it.

    Reference: ``reference=None`` (default, the paper's) uses A₀ = 0. For the A-FMI comparison, a reference
    *image* x′ can be given instead (``reference="blur"``, ``"mean"``, ``"noise"``, ``"zeros"`` or an image
    tensor, see :mod:`camrepro.methods.references`): then A₀ = A(x′), computed by one more forward pass of the
    reference images, and Σ_k φ_k = F_c(A(x)) − F_c(A(x′)). ``reference_activations=`` gives A₀ directly
    ([K, h, w], [1, K, h, w] or [B, K, h, w]). The map stays ReLU(Σ_k φ_k A_k), as in the paper; use
    :meth:`contributions` for the contributions, activations and reference activations themselves.

    Input range: with the zero (or a given) activation reference nothing reads pixel values, so
    ``check_range=False`` explains a model that takes another input range; an image reference needs [0, 1].

    Cost: one forward pass of the network (capturing A), one forward of the tail on the 2B rows [A; A₀] and
    one backward through the tail only (nothing before the layer); plus one network forward of the reference
    images when ``reference`` is an image. When the derived tail is linear (pooling and a linear layer after the
    last convolution, the paper's setting), DeepLIFT's multipliers are the tail's gradient (its Linear rule) at
    any point, so :meth:`weights` and the maps take them from a backward of the network's own pass, as Grad-CAM
    does: no tail forward at all (the same coefficients up to float rounding; :meth:`contributions` still runs
    the tail on [A; A₀], since it reports F_c(A₀)).

    Example:
        >>> cam = LIFTCAM(net, layer="features.17")          # a tail with conv + BN + ReLU6 + pool + fc
        >>> maps = cam(images)                               # [B, H, W] in [0, 1]
        >>> phi = cam.weights(images)                        # [B, K], sums to y_c(A) − y_c(0)

    Deviations from the paper: the official code uses captum's DeepLift on two hand-written tails (VGG16,
    ResNet-50); here the tail is derived from any traceable model and the rules are our own (captum's DeepLift
    has no rule for ReLU6 or hard-swish, and its max-pooling rule divides by input differences). The Rescale
    multiplier is computed in float64 and falls back to the derivative at the midpoint for differences below
    1e-7 (relative).
    """

    name = "lift-cam"
    paper = "Jung & Oh, ICCV 2021"
    needs_gradients = False
    forward_passes = "1 forward + 1 tail forward on [A; A0] (2B rows) + 1 tail backward"
    range_free = True  # check_range=False accepted (see Explainer)

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None, *,
                 tail: nn.Module | None = None, reference: ReferenceLike | None = None,
                 reference_activations: torch.Tensor | None = None, blur_sigma: float = DEFAULT_BLUR_SIGMA,
                 noise_seed: int = 0, check_range: bool = True, precision: str = "float32"):
        super().__init__(model, layer, check_range=check_range, precision=precision)
        if reference is not None and not check_range:
            raise ValueError("an image reference is built in [0, 1] pixel space, so it needs images in [0, 1]: "
                             "check_range=False is only for the all-zero activation reference "
                             "(reference=None) or reference_activations=")
        if reference is not None and reference_activations is not None:
            raise ValueError("give either reference (an image reference) or reference_activations, not both")
        self.reference = check_reference(reference) if reference is not None else None
        if reference_activations is not None and (not isinstance(reference_activations, torch.Tensor)
                                                  or not reference_activations.is_floating_point()):
            raise TypeError("reference_activations must be a floating-point tensor [K, h, w] or [B, K, h, w]")
        self.reference_activations = reference_activations
        self.blur_sigma = check_blur_sigma(blur_sigma)
        self.noise_seed = check_noise_seed(noise_seed)
        self.plan = plan_for_layer(self.model, self.layer_name, tail)
        # a given tail= is run (and checked against the model's logits) rather than trusted to be the model's
        self._gradient_is_multiplier = tail is None and self.plan.is_linear()

    def _reference_acts(self, images: torch.Tensor, acts: torch.Tensor) -> torch.Tensor | None:
        if self.reference_activations is not None:
            return self.reference_activations
        if self.reference is None:
            return None
        reference_images = make_reference(images, self.reference, blur_sigma=self.blur_sigma,
                                          noise_seed=self.noise_seed)
        _, reference_acts = self._capture(reference_images, grad=False)
        return reference_acts

    def _deeplift(self, images: torch.Tensor, acts: torch.Tensor, logits: torch.Tensor,
                  targets: torch.Tensor) -> tuple[Attribution, torch.Tensor | None]:
        reference = self._reference_acts(images, acts)
        result = deeplift(self.plan, acts.detach(), targets, reference)
        check_reproduces(result.logits, logits, self.name)
        return result, reference

    def _captures_gradient(self) -> bool:
        return self._gradient_is_multiplier

    def _channel_weights(self, images, acts, logits, targets):
        if self._gradient_is_multiplier:
            (multipliers,) = torch.autograd.grad(target_scores(logits, targets).sum(), acts)
            reference = broadcast_reference(self._reference_acts(images, acts), acts.detach())
            return ((acts.detach() - reference) * multipliers).flatten(2).sum(2)
        result, _ = self._deeplift(images, acts, logits, targets)
        return result.coefficients

    def contributions(self, images: torch.Tensor, targets: TargetsLike = None) -> LiftContributions:
        """The DeepLIFT contributions, coefficients, activations and reference activations of a batch."""
        images, parsed = self._validate(images, targets)
        with self._scope(images):
            logits, acts = self._capture(images, grad=False)
            targets = self._resolve_targets(parsed, logits)
            result, reference = self._deeplift(images, acts, logits, targets)
        reference = torch.zeros_like(acts) if reference is None else reference.to(acts).expand_as(acts)
        return LiftContributions(contributions=result.attributions, coefficients=result.coefficients,
                                 activations=acts.detach(), reference_activations=reference.detach(),
                                 output=result.output, reference_output=result.reference_output,
                                 targets=targets)
