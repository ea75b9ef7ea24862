"""Pixel attributions through captum: integrated gradients and DeepLIFT (Rescale), as [B, H, W] maps.

Both explain the whole network from its [0, 1] input (no layer), relative to a reference image (black by
default; see :mod:`camrepro.methods.references` for the other choices). The attribution of each pixel and
colour channel is signed; the map of a pixel is the positive part of the sum over its colour channels,
ReLU(Σ_c attr_c), the evidence *for* the target class, in the same role as the ReLU of a CAM. The signed
attributions are available from :meth:`PixelAttribution.attributions`.

DeepLIFT and ReLU6. captum 0.9.0 applies the Rescale rule only to the module types listed in
``captum.attr._core.deep_lift.SUPPORTED_NON_LINEAR`` (ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool,
Softmax), matched by exact type; any other module is back-propagated with its plain gradient, silently.
MobileNetV2 and EfficientNet-Lite use ``nn.ReLU6`` (a subclass of ``nn.Hardtanh``, not of ``nn.ReLU``), so
plain captum DeepLIFT is a gradient through every saturated ReLU6 and loses completeness
(Σ attributions = f(x) − f(x′)); the tests show the violation on a three-layer network. captum also keeps a
module's input on the module itself, so a module called twice per forward pass (EfficientNet-Lite's blocks
reuse one ReLU6 module) fails. Here DeepLIFT runs captum's driver with captum's Rescale multiplier extended to
``nn.ReLU6`` and ``nn.Hardtanh`` (element-wise and monotonic, so Δout/Δin is the Rescale multiplier exactly
as for ReLU) and with hooks that keep one record per call; and :func:`check_rescale_rules` first verifies, by
tracing the network with ``torch.fx``, that every operation is either affine (convolution, batch
normalisation in evaluation, average pooling, addition, padding, reshaping, products with constants) or a
module with a rule. Anything else (a functional ``torch.relu``, a product of two activations as in
squeeze-excitation) is a ValueError that names it, instead of a wrong result.
"""

from __future__ import annotations

import warnings

import torch
import torch.fx as fx
import torch.nn.functional as F
# captum imports tqdm.auto, which warns "IProgress not found" inside a Jupyter kernel without ipywidgets. No
# progress bar is ever drawn here, and a warning in a chapter's output fails the book build, so it is silenced
# for this import only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    from captum.attr import DeepLift as _CaptumDeepLift
    from captum.attr import IntegratedGradients as _CaptumIntegratedGradients
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR, nonlinear
from torch import nn

from camrepro.methods import operations as ops
from camrepro.methods.base import Explainer, Explanation, inference_scope
from camrepro.methods.references import (
    DEFAULT_BLUR_SIGMA,
    ReferenceLike,
    check_blur_sigma,
    check_noise_seed,
    check_reference,
    make_reference,
)
from camrepro.methods.score_cam import default_batch_size
from camrepro.methods.validation import TargetsLike, check_positive_int
from camrepro.tensors import evaluation_mode

# captum's rules plus the clipped-linear units of MobileNetV2 / EfficientNet-Lite and PReLU (element-wise).
RESCALE_RULES = {**SUPPORTED_NON_LINEAR, nn.ReLU6: nonlinear, nn.Hardtanh: nonlinear, nn.PReLU: nonlinear}



def check_rescale_rules(model: nn.Module, what: str = "DeepLIFT") -> None:
    """Raise a ValueError unless every operation of ``model`` that depends on its input is affine (``"linear"``
    in the operation table :mod:`camrepro.methods.operations`) or is a module with a Rescale rule in
    :data:`RESCALE_RULES`.

    The network is traced with ``torch.fx`` (``torch.nn`` modules kept whole); a network that cannot be traced
    is an error too, since nothing could then be verified.
    """
    try:
        with evaluation_mode(model):  # the branch a method runs (it runs the model in eval mode)
            graph = fx.Tracer().trace(model)
    except Exception as exc:  # fx raises many types for untraceable Python control flow
        raise ValueError(
            f"{what} cannot verify that every operation of {type(model).__name__} has a DeepLIFT rule: "
            f"torch.fx could not trace it ({type(exc).__name__}: {exc}). Pass check_rules=False to run "
            "DeepLIFT anyway (a non-linearity without a rule then gets its plain gradient)"
        ) from exc
    depends = ops.dependent_nodes(graph)
    for node in graph.nodes:
        if node not in depends or node.op in ("placeholder", "output"):
            continue
        # captum hooks modules only: a module needs its own rule; everything else must be linear (the gradient)
        if node.op == "call_module" and type(model.get_submodule(node.target)) in RESCALE_RULES:
            continue
        try:
            if ops.classify(node, model, depends).kind == "linear":
                continue
        except ops.UnsupportedTailOperation:
            pass
        raise ValueError(
            f"{what} has no rule for {ops.name_operation(node, model)} in {type(model).__name__} "
            f"(node {node.name!r}): it is neither affine nor a non-linearity with a Rescale rule "
            f"({', '.join(sorted(t.__name__ for t in RESCALE_RULES))}), so its contributions would be plain "
            "gradients and completeness would fail. Use nn modules for non-linearities"
        )


class _Call:
    """One call of a non-linear module: its input and output (the image and reference halves together) and the
    gradient that reached its output."""

    __slots__ = ("input", "output", "grad_output")

    def __init__(self, inputs: torch.Tensor):
        self.input = inputs
        self.output: torch.Tensor | None = None
        self.grad_output: torch.Tensor | None = None


class _RescaleDeepLift(_CaptumDeepLift):
    """captum's DeepLift with the rule table :data:`RESCALE_RULES` and hooks that keep one record per call.

    captum keeps a module's input and output as attributes of the module, so a module used twice per forward
    pass (EfficientNet-Lite's blocks apply one ReLU6 module after the expansion and after the depthwise
    convolution) fails in the backward pass. Here each call gets its own :class:`_Call` record, closed over by
    the gradient hooks of that call's tensors; nothing stays on the user's modules. The input hook sits on a
    copy of the input that only the module reads, so it sees the module's own gradient even when the input
    also feeds another branch. The multiplier itself is captum's rule (``nonlinear``: Δout/Δin where
    |Δin| ≥ eps, the gradient elsewhere).
    """

    def _is_non_linear(self, module: nn.Module) -> bool:
        return type(module) in RESCALE_RULES

    def _can_register_hook(self, module: nn.Module) -> bool:
        # captum also skips a module that already has a backward hook, which would silently fall back to its
        # gradient; our hooks are forward and tensor hooks and coexist with the user's
        return self._is_non_linear(module)

    def _register_hooks(self, module: nn.Module, attribute_to_layer_input: bool = True) -> None:
        if not self._can_register_hook(module):
            return
        rule = RESCALE_RULES[type(module)]
        eps = self.eps
        current: list[_Call] = []

        def pre_hook(mod: nn.Module, args: tuple) -> tuple:
            if len(args) != 1 or not isinstance(args[0], torch.Tensor):
                raise ValueError(f"DeepLIFT: the {type(mod).__name__} module must take one tensor input")
            record = _Call(args[0].detach().clone())
            own_input = args[0].clone()

            def input_grad_hook(grad: torch.Tensor) -> torch.Tensor | None:
                if record.grad_output is None or record.output is None:
                    return None
                mod.input = record.input  # captum's max-pool rule reads it from the module
                try:
                    return rule(mod, record.input, record.output, grad, record.grad_output, eps=eps)
                finally:
                    del mod.input

            if own_input.requires_grad:
                own_input.register_hook(input_grad_hook)
            current.append(record)
            return (own_input,)

        def forward_hook(mod: nn.Module, args: tuple, output: torch.Tensor) -> None:
            record = current.pop()
            record.output = output.detach().clone()

            def output_grad_hook(grad: torch.Tensor) -> None:
                record.grad_output = grad

            if output.requires_grad:
                output.register_hook(output_grad_hook)

        self.forward_handles.append(module.register_forward_pre_hook(pre_hook))
        self.forward_handles.append(module.register_forward_hook(forward_hook))


class PixelAttribution(Explainer):
    """Base of the captum-backed pixel attributions: reference handling, targets, the [B, H, W] map.

    Input range: ``check_range=False`` explains a model that takes another input range, with the references
    that do not depend on it (``"zeros"``, the zero of the model's input, and ``"mean"``); ``"blur"``,
    ``"noise"`` and image references are built in [0, 1] and need images in [0, 1].
    """

    needs_layer = False
    needs_gradients = True
    has_weights = False
    range_free = True

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        *,
        reference: ReferenceLike = "zeros",
        blur_sigma: float = DEFAULT_BLUR_SIGMA,
        noise_seed: int = 0,
        check_range: bool = True,
    ):
        super().__init__(model, layer, check_range=check_range)
        self.reference = check_reference(reference, check_range=check_range)
        self.blur_sigma = check_blur_sigma(blur_sigma)
        self.noise_seed = check_noise_seed(noise_seed)

    def attributions(self, images: torch.Tensor, targets: TargetsLike = None) -> torch.Tensor:
        """Signed attributions [B, C, H, W] of every pixel and colour channel (their sum over everything is
        f_c(x) − f_c(x′) by completeness: exactly for DeepLIFT, up to the quadrature error for IG)."""
        images, parsed = self._validate(images, targets)
        with inference_scope(self.model):
            return self._signed_attributions(images, parsed)[0]

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        attributions, targets = self._signed_attributions(images, targets)
        return Explanation(saliency=torch.relu(attributions.sum(dim=1)), targets=targets)

    def _signed_attributions(
        self, images: torch.Tensor, targets: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if targets is None:
            with torch.no_grad():
                targets = self._resolve_targets(None, self._forward(images))
        else:
            with torch.no_grad():
                # the range check needs the number of classes; one forward of a single image gives it
                self._resolve_targets(targets, self._forward(images[:1]))
        reference = make_reference(
            images, self.reference, blur_sigma=self.blur_sigma, noise_seed=self.noise_seed
        )
        inputs = images.detach().clone().requires_grad_(True)
        with warnings.catch_warnings():
            # captum announces that it hooks the non-linearities (they are removed in its finally clause)
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)
            attributions = self._attribute(inputs, reference, targets).detach()
        return attributions, targets

    def _attribute(
        self, inputs: torch.Tensor, reference: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


class IntegratedGradients(PixelAttribution):
    """Integrated gradients from the reference image to the image, through captum.

    Paper: M. Sundararajan, A. Taly, Q. Yan, "Axiomatic Attribution for Deep Networks", ICML 2017, Eq. (1):
    IG_i(x) = (x_i − x′_i) ∫_0^1 ∂F(x′ + α(x − x′))/∂x_i dα, with completeness Σ_i IG_i = F(x) − F(x′)
    (Prop. 1). F is the target logit; x′ the reference (``reference="zeros"``: a black image).

    The integral uses ``steps`` nodes of ``method`` (captum's default Gauss-Legendre rule; the Riemann rules
    ``"riemann_trapezoid"`` etc. are accepted too); ``internal_batch_size`` interpolated images go through the
    network per pass (at least the number of images; default: 16 on the CPU, 64 on a GPU, see
    :func:`camrepro.methods.score_cam.default_batch_size`). Map: ReLU(Σ_colour IG) per pixel, at the input
    resolution.

    Cost: ``steps`` forward + backward passes to the input per image (batched), plus one forward pass of the
    images when ``targets`` is None, or of one image to check the targets' range when they are given.

    Example:
        >>> ig = IntegratedGradients(net, steps=50)
        >>> maps = ig(images)                       # [B, H, W] in [0, 1]
        >>> attr = ig.attributions(images, targets) # [B, 3, H, W], signed

    Deviations from the paper: the paper approximates the integral with a Riemann sum (20-300 steps); captum's
    default Gauss-Legendre quadrature is more accurate for the same number of steps. The paper defines
    attributions, not a map: the map (positive part of the colour-summed attribution) is our choice.
    """

    name = "integrated-gradients"
    paper = "Sundararajan et al., ICML 2017"
    forward_passes = "steps x (1 forward + 1 backward to the input)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        *,
        steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        reference: ReferenceLike = "zeros",
        blur_sigma: float = DEFAULT_BLUR_SIGMA,
        noise_seed: int = 0,
        check_range: bool = True,
    ):
        super().__init__(model, layer, reference=reference, blur_sigma=blur_sigma, noise_seed=noise_seed,
                         check_range=check_range)
        self.steps = check_positive_int(steps, "steps")
        methods = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
        if method not in methods:
            raise ValueError(f"unknown integration method {method!r}; expected one of {methods}")
        self.method = method
        self.internal_batch_size = (
            None
            if internal_batch_size is None
            else check_positive_int(internal_batch_size, "internal_batch_size")
        )

    def _attribute(self, inputs, reference, targets):
        captum_ig = _CaptumIntegratedGradients(self.model)
        return captum_ig.attribute(
            inputs,
            baselines=reference,
            target=targets,
            n_steps=self.steps,
            method=self.method,
            internal_batch_size=max(
                self.internal_batch_size or default_batch_size(inputs.device), inputs.shape[0]
            ),
        )


class DeepLift(PixelAttribution):
    """DeepLIFT with the Rescale rule, from the reference image, through captum (extended to ReLU6).

    Paper: A. Shrikumar, P. Greenside, A. Kundaje, "Learning Important Features Through Propagating Activation
    Differences", ICML 2017: contributions C_{Δx_i Δt} with summation-to-delta Σ_i C = t − t′ (Eq. 1),
    multipliers m = C/Δx chained through the network (Eq. 3), and the rules of Sec. 3.5: the linear rule,
    and the Rescale rule m = Δy/Δx for element-wise non-linearities. t is the target logit; x′ the reference
    (``reference="zeros"``: a black image).

    Before running, :func:`check_rescale_rules` verifies that every operation of the network is affine or
    has a Rescale rule (``check_rules=False`` skips it). Map: ReLU(Σ_colour contribution) per pixel.

    Cost: one forward and one backward pass of the images and the references together (a batch of 2B), plus
    one forward pass of the images when ``targets`` is None, or of one image to check the targets' range when
    they are given.

    Example:
        >>> dl = DeepLift(net)
        >>> maps = dl(images)                          # [B, H, W] in [0, 1]
        >>> contributions = dl.attributions(images, targets)   # sums to f(x) − f(x′) per image

    Deviations from the paper: the Rescale rule is used everywhere (the paper's RevealCancel rule is not
    implemented by captum); the rule table is captum's extended to ReLU6/Hardtanh (see the module docstring).
    Max-pooling uses captum's rule.
    """

    name = "deeplift"
    paper = "Shrikumar et al., ICML 2017"
    forward_passes = "1 forward + 1 backward of [x; x'] (2B inputs)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        *,
        reference: ReferenceLike = "zeros",
        blur_sigma: float = DEFAULT_BLUR_SIGMA,
        noise_seed: int = 0,
        check_rules: bool = True,
        eps: float = 1e-10,
        check_range: bool = True,
    ):
        super().__init__(model, layer, reference=reference, blur_sigma=blur_sigma, noise_seed=noise_seed,
                         check_range=check_range)
        if not isinstance(check_rules, bool):
            raise TypeError(f"check_rules must be a bool, got {type(check_rules).__name__}")
        if check_rules:
            check_rescale_rules(model, "deeplift")
        self.eps = float(eps)

    def _attribute(self, inputs, reference, targets):
        return _RescaleDeepLift(self.model, eps=self.eps).attribute(
            inputs, baselines=reference, target=targets
        )
