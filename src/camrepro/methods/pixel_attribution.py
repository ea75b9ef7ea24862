"""Pixel attributions: integrated gradients (through captum) and DeepLIFT (Rescale, through the package's own
engine :mod:`camrepro.methods.deeplift_rules`), as [B, H, W] maps.

Both explain the whole network from its [0, 1] input (no layer), relative to a reference image (black by
default; see :mod:`camrepro.methods.references` for the other choices). The attribution of each pixel and
colour channel is signed; the map of a pixel is the positive part of the sum over its colour channels,
ReLU(Σ_c attr_c), the evidence *for* the target class, in the same role as the ReLU of a CAM. The signed
attributions are available from :meth:`PixelAttribution.attributions`.

DeepLIFT runs the same op-by-op engine as LIFT-CAM's tails, on the whole network: :func:`plan_network` traces
the model from its input with ``torch.fx`` (``torch.nn`` modules kept whole, in evaluation mode, as tails are
traced) and gives every operation that depends on the input its rule from the one operation table
:mod:`camrepro.methods.operations` — the gradient for affine operations, the Rescale rule for element-wise
non-linearities (ReLU, ReLU6, PReLU, hard-swish, abs, … as modules, functions or methods, however often a
module is called), the bounded two-point rule for max-pooling and the exact rule for a product of two
activations (squeeze-excitation). Every rule sums to delta, so Σ attributions = f_c(x) − f_c(x′) to float
rounding. Anything else (softmax, layer-norm, a max over a dimension, a division by an activation) is an error
that names it, instead of a wrong result; so is a network that ``torch.fx`` cannot trace.

Why not captum's DeepLift: captum 0.9.0 applies the Rescale rule only to the module types it lists (ReLU, ELU,
LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool, Softmax), matched by exact type, and back-propagates any other
operation with its plain gradient, silently. MobileNetV2 and EfficientNet-Lite use ``nn.ReLU6``, so captum's
DeepLIFT is a gradient through every saturated ReLU6 there and loses completeness; it also keeps a module's
input on the module, which fails for a module called twice per forward pass. On networks of ``nn.ReLU`` (and
the affine operations) both compute the same contributions, which the tests check; captum remains a test
oracle only.
"""

from __future__ import annotations

import abc
import warnings

import torch
import torch.fx as fx
# captum imports tqdm.auto, which warns "IProgress not found" inside a Jupyter kernel without ipywidgets. No
# progress bar is ever drawn here, and a warning in a chapter's output fails the book build, so it is silenced
# for this import only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    from captum.attr import IntegratedGradients as _CaptumIntegratedGradients
from torch import nn

from camrepro.methods import operations as ops
from camrepro.methods.base import Explainer, Explanation
from camrepro.methods.deeplift_rules import TailPlan, check_reproduces, deeplift
from camrepro.methods.references import (
    DEFAULT_BLUR_SIGMA,
    ReferenceLike,
    check_blur_sigma,
    check_noise_seed,
    check_reference,
    make_reference,
)
from camrepro.methods.score_cam import default_batch_size
from camrepro.methods.tail import TailError
from camrepro.methods.validation import TargetsLike, check_positive_int
from camrepro.models.folded import folded_forward
from camrepro.tensors import evaluation_mode, forward_channels_last


def plan_network(model: nn.Module, what: str = "DeepLIFT", check_rules: bool = True) -> TailPlan:
    """The DeepLIFT plan of the whole network ``model``, from its input to its logits: its ``torch.fx`` trace
    (``torch.nn`` modules kept whole, traced in evaluation mode, the branch a method runs) with the rule of
    every operation that depends on the input (:func:`camrepro.methods.operations.classify`).

    A network that ``torch.fx`` cannot trace is a :class:`~camrepro.methods.tail.TailError` naming the
    problem. An operation without a rule is an :class:`~camrepro.methods.operations.UnsupportedTailOperation`
    naming it; with ``check_rules=False`` it is back-propagated with its plain gradient instead (the user's
    explicit choice: completeness may then fail).
    """
    try:
        with evaluation_mode(model):
            tracer = fx.Tracer()
            graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types for untraceable Python control flow
        raise TailError(
            f"{what} cannot run on {type(model).__name__}: torch.fx could not trace the network from its "
            f"input ({type(exc).__name__}: {exc}); the DeepLIFT rules need its graph to see every operation. "
            "Write the forward pass without data-dependent Python control flow"
        ) from exc
    network = fx.GraphModule(tracer.root, graph, class_name=f"Traced{type(model).__name__}")
    try:
        depends = ops.dependent_nodes(network.graph)
    except TailError as exc:
        raise TailError(f"{what} explains a network of one input tensor; {type(model).__name__} "
                        f"takes {sum(n.op == 'placeholder' for n in network.graph.nodes)}") from exc
    steps: dict[fx.Node, ops.Step] = {}
    for node in network.graph.nodes:
        if node not in depends or node.op in ("placeholder", "output"):
            continue
        try:
            steps[node] = ops.classify(node, network, depends)
        except ops.UnsupportedTailOperation as exc:
            if check_rules:
                raise ops.UnsupportedTailOperation(
                    f"{what} has no rule for {ops.name_operation(node, network)} in {type(model).__name__} "
                    f"(node {node.name!r}: {node.format_node()}). Rules exist for affine operations "
                    "(convolution, linear, batch-norm and dropout in eval mode, average pooling, addition, "
                    "scaling by constants, reshapes), element-wise activations, max-pooling and products of "
                    "two activations; pass check_rules=False to back-propagate the plain gradient through it "
                    "(completeness then fails)"
                ) from exc
            steps[node] = ops.Step("linear", False, ops.describe(node, network))
    return TailPlan(network, steps)


class PixelAttribution(Explainer):
    """Base of the pixel attributions: reference handling, targets, the [B, H, W] map.

    Input range: ``check_range=False`` explains a model that takes another input range, with the references
    that do not depend on it (``"zeros"``, the zero of the model's input, and ``"mean"``); ``"blur"``,
    ``"noise"`` and image references are built in [0, 1] and need images in [0, 1].
    """

    needs_layer = False
    needs_gradients = True
    has_weights = False
    range_free = True
    # Measured (CPU autocast, 224² photos, MobileNetV2 / EfficientNet-Lite0): bf16 maps correlate only
    # 0.77-0.90 with the float32 maps; a pixel's attribution is a gradient through the whole network.
    autocast_applies = False
    autocast_refusal = ("its pixel gradients run back through the whole network, and in bfloat16 its maps "
                        "correlate only 0.77-0.90 with the float32 maps on the packaged networks")

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        *,
        reference: ReferenceLike = "zeros",
        blur_sigma: float = DEFAULT_BLUR_SIGMA,
        noise_seed: int = 0,
        check_range: bool = True,
        precision: str = "float32",
    ):
        super().__init__(model, layer, check_range=check_range, precision=precision)
        self.reference = check_reference(reference, check_range=check_range)
        self.blur_sigma = check_blur_sigma(blur_sigma)
        self.noise_seed = check_noise_seed(noise_seed)

    def attributions(self, images: torch.Tensor, targets: TargetsLike = None) -> torch.Tensor:
        """Signed attributions [B, C, H, W] of every pixel and colour channel (their sum over everything is
        f_c(x) − f_c(x′) by completeness: exactly for DeepLIFT, up to the quadrature error for IG)."""
        images, parsed = self._validate(images, targets)
        with self._scope(images):
            return self._signed_attributions(images, parsed)[0]

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        attributions, targets = self._signed_attributions(images, targets)
        return Explanation(saliency=torch.relu(attributions.sum(dim=1)), targets=targets)

    def _signed_attributions(
        self, images: torch.Tensor, targets: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            if targets is None:
                logits = self._forward(images)
                targets = self._resolve_targets(None, logits)
            else:
                # the range check needs the number of classes; one forward of a single image gives it
                logits = self._forward(images[:1])
                self._resolve_targets(targets, logits)
        reference = make_reference(
            images, self.reference, blur_sigma=self.blur_sigma, noise_seed=self.noise_seed
        )
        attributions = self._attribute(images.detach(), reference, targets, logits).detach()
        return attributions, targets

    @abc.abstractmethod
    def _attribute(
        self, inputs: torch.Tensor, reference: torch.Tensor, targets: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        """The signed attributions; ``logits``: the model's logits of the first ``len(logits)`` images."""


class IntegratedGradients(PixelAttribution):
    """Integrated gradients from the reference image to the image, through captum.

    Paper: M. Sundararajan, A. Taly, Q. Yan, "Axiomatic Attribution for Deep Networks", ICML 2017, Eq. (1):
    IG_i(x) = (x_i − x′_i) ∫_0^1 ∂F(x′ + α(x − x′))/∂x_i dα, with completeness Σ_i IG_i = F(x) − F(x′)
    (Prop. 1). F is the target logit; x′ the reference (``reference="zeros"``: a black image).

    The integral uses ``steps`` nodes of ``method`` (captum's default Gauss-Legendre rule; the Riemann rules
    ``"riemann_trapezoid"`` etc. are accepted too); ``internal_batch_size`` interpolated images go through the
    network per pass (at least the number of images; default: 8 on the CPU, 64 on a GPU, see
    :func:`camrepro.tensors.default_batch_size`), through the model's folded copy
    (:func:`camrepro.models.folded.folded_forward`) on channels-last inputs on the CPU. Map: ReLU(Σ_colour IG)
    per pixel, at the input resolution.

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
        precision: str = "float32",
    ):
        super().__init__(model, layer, reference=reference, blur_sigma=blur_sigma, noise_seed=noise_seed,
                         check_range=check_range, precision=precision)
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

    def _attribute(self, inputs, reference, targets, logits):
        # the path's passes need no hook: the folded copy (camrepro.models.folded) runs them
        captum_ig = _CaptumIntegratedGradients(folded_forward(self.model, inputs))
        batch = max(self.internal_batch_size or default_batch_size(inputs.device), inputs.shape[0])

        def attribute(x: torch.Tensor, x_ref: torch.Tensor) -> torch.Tensor:
            return captum_ig.attribute(x.clone().requires_grad_(True), baselines=x_ref, target=targets,
                                       n_steps=self.steps, method=self.method, internal_batch_size=batch)

        # the interpolated images in channels-last format on the CPU: faster forward and backward passes
        return forward_channels_last(attribute, inputs, reference, remember=self.model).contiguous()


class DeepLift(PixelAttribution):
    """DeepLIFT with the Rescale rule, from the reference image, through the package's own op-by-op engine.

    Paper: A. Shrikumar, P. Greenside, A. Kundaje, "Learning Important Features Through Propagating Activation
    Differences", ICML 2017: contributions C_{Δx_i Δt} with summation-to-delta Σ_i C = t − t′ (Eq. 1),
    multipliers m = C/Δx chained through the network (Eq. 3), and the rules of Sec. 3.5: the linear rule,
    and the Rescale rule m = Δy/Δx for element-wise non-linearities. t is the target logit; x′ the reference
    (``reference="zeros"``: a black image). Contributions (x − x′) ⊙ m.

    The network is traced from its input with ``torch.fx`` once, at construction (:func:`plan_network`), and
    every operation on the input's path gets its rule from :mod:`camrepro.methods.deeplift_rules`, the engine
    of LIFT-CAM's tails; an operation without a rule is an error that names it (``check_rules=False``
    back-propagates its plain gradient instead), and so is a network that cannot be traced. Map:
    ReLU(Σ_colour contribution) per pixel.

    Cost: one forward and one backward pass of the images and the references together (a batch of 2B), plus
    one forward pass of the images when ``targets`` is None, or of one image to check the targets' range when
    they are given.

    Example:
        >>> dl = DeepLift(net)
        >>> maps = dl(images)                          # [B, H, W] in [0, 1]
        >>> contributions = dl.attributions(images, targets)   # sums to f(x) − f(x′) per image

    Deviations from the paper: the Rescale rule is used everywhere (the paper's RevealCancel rule is not
    implemented). The Rescale multiplier is computed in float64 and falls back to the derivative at the
    midpoint for input differences below 1e-7 (relative; captum: below ``eps`` = 1e-10, absolute; ``eps`` is
    still accepted, and unused). Max-pooling, which
    the paper gives no rule for, gets the bounded two-point rule of :mod:`camrepro.methods.deeplift_rules`
    (captum divides by Δx at the two positions); a product of two activations gets the exact rule
    m_u = (v + v′)/2, m_v = (u + u′)/2. On networks of ``nn.ReLU`` and affine operations the contributions are
    captum's DeepLift's.
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
        precision: str = "float32",
    ):
        super().__init__(model, layer, reference=reference, blur_sigma=blur_sigma, noise_seed=noise_seed,
                         check_range=check_range, precision=precision)
        if not isinstance(check_rules, bool):
            raise TypeError(f"check_rules must be a bool, got {type(check_rules).__name__}")
        self.check_rules = check_rules
        # kept for compatibility: the engine's Rescale multiplier switches to the derivative by its own
        # relative tolerance (camrepro.methods.deeplift_rules.SECANT_TOLERANCE)
        self.eps = float(eps)
        self.plan = plan_network(self.model, "deeplift", check_rules)

    def _attribute(self, inputs, reference, targets, logits):
        result = deeplift(self.plan, inputs, targets.to(inputs.device), reference)
        # the traced graph must compute what the model computes (a forward with Python side effects may not)
        check_reproduces(result.logits[: len(logits)], logits, self.name)
        return result.attributions
