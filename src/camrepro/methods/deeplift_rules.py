"""DeepLIFT-Rescale and LRP-ε backward rules for the network tail after a CAM layer, applied op by op.

LIFT-CAM (Jung & Oh, ICCV 2021, Sec. 3.3) weights activation map A_k by the DeepLIFT contribution of A_k to
the target output of the tail F that follows the layer. DeepLIFT (Shrikumar, Greenside & Kundaje, ICML 2017,
Sec. 3) computes *multipliers* m = Δout/Δin with a chain rule that is back-propagation with modified local
derivatives; the contributions are C = (A − A₀) ⊙ m. The rules used here, each exact for its own operation
("summation-to-delta": Σ_i m_i Δx_i = Δy), so that the whole tail is complete, Σ C = F(A) − F(A₀):

- **linear** operations (convolution, linear layer, batch-norm in eval mode, average pooling, addition,
  scaling by a constant, reshapes, dropout in eval mode, …): the multiplier is the Jacobian — the ordinary
  gradient (DeepLIFT's Linear rule, Sec. 3.5.1).
- **element-wise non-linearities** (ReLU, ReLU6, PReLU, hard-swish, sigmoid, abs, … as modules, functions or
  methods; PReLU's slope is a parameter, not an activation, so the unit is still element-wise):
  the Rescale rule (Sec. 3.5.2), m = (f(x) − f(x₀)) / (x − x₀), evaluated in float64; where
  |x − x₀| ≤ 1e-7·max(1, |x|, |x₀|) the secant is ill-conditioned and f′ at the midpoint (x + x₀)/2 is used.
- **max-pooling** (any kernel, stride, padding; adaptive too): Δy = max(x) − max(x₀) of each window is split
  between the window's maximiser a for x and its maximiser a′ for x₀: with u = x_a − x_a′ ≥ 0 and
  v = x₀_a′ − x₀_a ≥ 0, m_a = u/(u + v) and m_a′ = v/(u + v) (both m = 1 at a when a = a′). The multipliers
  lie in [0, 1] and sum to delta exactly. This is our rule (DeepLIFT's paper gives none for max-pooling;
  captum divides by Δx at the two positions, which is unbounded when Δx is small there).
- **product of two activations** (u ⊙ v, e.g. a hard-swish written as x · relu6(x + 3) / 6, or a
  squeeze-and-excitation gate): m_u = (v + v₀)/2, m_v = (u + u₀)/2, exact since
  uv − u₀v₀ = ½(v + v₀)(u − u₀) + ½(u + u₀)(v − v₀).

Any other operation that depends on the activations (a max over a dimension, softmax, layer-norm, a division
by an activation, batch-norm in training mode, …) raises :class:`UnsupportedTailOperation` naming it: silently
using the plain gradient there would give numbers that are not DeepLIFT contributions.

Implementation: the tail runs once on the activations and the reference stacked in one batch ``[A; A₀]``; an
``fx.Interpreter`` evaluates it node by node and routes each non-linear node through an ``autograd.Function``
whose backward implements its rule for the first half (both halves are needed to compute the multipliers, so
every rule sees x and x₀ at once). ``autograd.grad`` of the target outputs then gives the multipliers. Cost:
one forward of the tail on 2B rows and one backward; nothing before the layer is touched.

LRP-ε (Bach et al., PLoS ONE 2015), as LIFT-CAM's official code uses it for LRP-CAM (captum's ``LRP``, whose
default rule is ε = 1e-9 on convolutions, linear layers, batch-norm and pooling, with relevance passed
unchanged through non-linearities): with relevance written R_x = x ⊙ g, the same engine computes g with

- element-wise non-linearities: relevance passes through unchanged, i.e. m = f(x)/x; we use (f(x) − f(0))/x,
  equal for every f with f(0) = 0 (ReLU, ReLU6, hard-swish, …) and bounded for the others;
- convolutions, linear layers, batch-norm and pooling (average and max): the gradient arriving at their output
  z is multiplied by z / (z + ε·sign(z)) (sign(0) = 1), which is the ε-rule R_x = x ⊙ Jᵀ (R_z / (z + ε));
- max-pooling: winner takes all (the gradient); a product of two activations: no LRP rule, an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from camrepro.methods import operations as ops
from camrepro.methods.operations import Step, UnsupportedTailOperation  # noqa: F401  (re-exported)
from camrepro.methods.tail import TailError, check_reproduces  # noqa: F401  (check_reproduces re-exported)

MODES = ("rescale", "lrp")
DEFAULT_LRP_EPSILON = 1e-9
# Below this relative gap the secant (f(x) − f(x₀)) / (x − x₀) is replaced by f′ at the midpoint; in float64
# the secant's rounding error is then at most ~1e-9 relative, and the derivative's error O(Δx²).
SECANT_TOLERANCE = 1e-7


# ------------------------------------------------------------------------------------------- the tail's plan
class TailPlan:
    """The rule of every operation of a tail that depends on the activations (see :func:`plan_tail`)."""

    def __init__(self, tail: fx.GraphModule, steps: dict[fx.Node, Step]):
        self.tail = tail
        self.steps = steps

    def nonlinear_nodes(self) -> list[fx.Node]:
        """Nodes with a rule of their own (not the gradient), in execution order."""
        return [n for n, s in self.steps.items() if s.kind != "linear"]

    def describe(self) -> list[tuple[str, str]]:
        """``(operation, kind)`` for every operation on the activations' path, in execution order."""
        return [(s.description, s.kind) for s in self.steps.values()]

    def is_linear(self) -> bool:
        return not self.nonlinear_nodes()


def as_graph_module(tail: nn.Module) -> fx.GraphModule:
    """``tail`` itself when it is a GraphModule, else its ``torch.fx`` trace (a clear error if it cannot be
    traced)."""
    if isinstance(tail, fx.GraphModule):
        return tail
    if not isinstance(tail, nn.Module):
        raise TypeError(f"tail must be a torch.nn.Module mapping activations to logits, "
                        f"got {type(tail).__name__}")
    try:
        return fx.symbolic_trace(tail)
    except Exception as exc:  # fx raises many types for untraceable Python
        raise TailError(f"the tail {type(tail).__name__} cannot be traced with torch.fx "
                        f"({type(exc).__name__}: {exc}); the DeepLIFT rules need its graph to see every "
                        "operation") from exc


def plan_tail(tail: nn.Module) -> TailPlan:
    """Classify every operation of ``tail`` that depends on its input (:func:`camrepro.methods.operations.classify`);
    :class:`UnsupportedTailOperation` naming the first operation that has no rule. Nodes that do not depend on
    the activations (parameters, constants) are evaluated as they are."""
    tail = as_graph_module(tail)
    dependent = ops.dependent_nodes(tail.graph)
    steps = {node: ops.classify(node, tail, dependent) for node in tail.graph.nodes
             if node in dependent and node.op not in ("placeholder", "output")}
    return TailPlan(tail, steps)


# ------------------------------------------------------------------------------------------------- the rules
def _work_dtype(device: torch.device) -> torch.dtype:
    # float64 keeps the secant's rounding error negligible; Apple's MPS backend has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def secant_slopes(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  x0: torch.Tensor) -> torch.Tensor:
    """The Rescale multiplier (f(x) − f(x₀)) / (x − x₀) of an element-wise ``fn``, element by element, with
    f′((x + x₀)/2) where |x − x₀| ≤ ``SECANT_TOLERANCE``·max(1, |x|, |x₀|). Same shape and dtype as ``x``."""
    dtype = _work_dtype(x.device)
    xd, x0d = x.detach().to(dtype), x0.detach().to(dtype)
    with torch.no_grad():
        dx = xd - x0d
        dy = fn(xd.clone()) - fn(x0d.clone())
        scale = torch.maximum(xd.abs(), x0d.abs()).clamp_min(1.0)
        near = dx.abs() <= SECANT_TOLERANCE * scale
        slopes = dy / torch.where(near, torch.ones_like(dx), dx)
    if bool(near.any()):
        with torch.enable_grad():
            mid = ((xd + x0d) / 2).requires_grad_(True)
            (derivative,) = torch.autograd.grad(fn(mid.clone()).sum(), mid)
        slopes = torch.where(near, derivative, slopes)
    return slopes.to(x.dtype)


def _halves(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = t.shape[0] // 2
    return t[:half], t[half:]


class _Rescale(torch.autograd.Function):
    """y = f(x); backward multiplies by the secant slope against the reference half (or against 0)."""

    @staticmethod
    def forward(ctx, x, fn, stacked):
        ctx.save_for_backward(x)
        ctx.fn, ctx.stacked = fn, stacked
        return fn(x.clone())  # a copy: in-place activations (ReLU6(inplace=True)) must not alter the saved x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if ctx.stacked:
            xa, x0 = _halves(x)
            ga, _ = _halves(grad)
            ma = secant_slopes(ctx.fn, xa, x0)
            return torch.cat([ga * ma, torch.zeros_like(ga)]), None, None
        return grad * secant_slopes(ctx.fn, x, torch.zeros_like(x)), None, None


class _MaxPool(torch.autograd.Function):
    """Max-pooling of the stacked batch with the bounded two-point DeepLIFT rule of the module docstring."""

    @staticmethod
    def forward(ctx, x, pool):
        y, indices = pool(x)
        ctx.save_for_backward(x, y, indices)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y, indices = ctx.saved_tensors
        xa, x0 = (h.flatten(2) for h in _halves(x))
        ya, y0 = (h.flatten(2) for h in _halves(y))
        ia, i0 = (h.flatten(2) for h in _halves(indices))
        ga = _halves(grad)[0].flatten(2)
        gap_input = ya - xa.gather(2, i0)        # u = x_a − x_a′ ≥ 0
        gap_reference = y0 - x0.gather(2, ia)    # v = x₀_a′ − x₀_a ≥ 0
        total = gap_input + gap_reference
        share = torch.where(total > 0, gap_input / total.clamp_min(torch.finfo(total.dtype).tiny),
                            torch.ones_like(total))
        grad_a = torch.zeros_like(xa).scatter_add_(2, ia, ga * share).scatter_add_(2, i0, ga * (1 - share))
        grad_a = grad_a.view(_halves(x)[0].shape)
        return torch.cat([grad_a, torch.zeros_like(grad_a)]), None


class _Product(torch.autograd.Function):
    """u ⊙ v of the stacked batch; backward uses the averages of input and reference halves (exact rule)."""

    @staticmethod
    def forward(ctx, u, v):
        ctx.save_for_backward(u, v)
        return u * v

    @staticmethod
    def backward(ctx, grad):
        u, v = ctx.saved_tensors
        ua, u0 = _halves(u)
        va, v0 = _halves(v)
        ga = _halves(grad)[0]
        grad_u = (ga * (va + v0) / 2).sum_to_size(ua.shape)
        grad_v = (ga * (ua + u0) / 2).sum_to_size(va.shape)
        return torch.cat([grad_u, torch.zeros_like(grad_u)]), torch.cat([grad_v, torch.zeros_like(grad_v)])


class _EpsilonStabiliser(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by z / (z + ε·sign(z)) (LRP's ε-rule)."""

    @staticmethod
    def forward(ctx, z, epsilon):
        ctx.save_for_backward(z)
        ctx.epsilon = epsilon
        return z.clone()

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        sign = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
        return grad * z / (z + ctx.epsilon * sign), None


def _max_pool_with_indices(node: fx.Node, tail: fx.GraphModule, args: tuple, kwargs: dict):
    """A function x → (max-pooled x, indices) equivalent to the node's pooling."""
    if node.op == "call_module":
        module = tail.get_submodule(node.target)
        if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
            function = {nn.AdaptiveMaxPool1d: F.adaptive_max_pool1d,
                        nn.AdaptiveMaxPool2d: F.adaptive_max_pool2d,
                        nn.AdaptiveMaxPool3d: F.adaptive_max_pool3d}[type(module)]
            return lambda x: function(x, module.output_size, return_indices=True)
        function = {nn.MaxPool1d: F.max_pool1d, nn.MaxPool2d: F.max_pool2d,
                    nn.MaxPool3d: F.max_pool3d}[type(module)]
        return lambda x: function(x, module.kernel_size, module.stride, module.padding, module.dilation,
                                  ceil_mode=module.ceil_mode, return_indices=True)
    rest = args[1:]
    options = {k: v for k, v in kwargs.items() if k != "return_indices"}
    position = ops.MAX_POOL_FUNCTIONS[node.target]
    rest = rest[:position - 1]
    return lambda x: node.target(x, *rest, **options, return_indices=True)


def _elementwise_function(node: fx.Node, tail: fx.GraphModule, args: tuple, kwargs: dict):
    """The node's function of its first argument. Tensor arguments (PReLU's slopes) follow the input's dtype, as
    the secant is evaluated in float64."""
    rest = args[1:]

    def cast(value: object, like: torch.Tensor) -> object:
        return value.to(like.dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    if node.op == "call_module":
        module = tail.get_submodule(node.target)
        if isinstance(module, nn.PReLU):
            return lambda x: F.prelu(x, module.weight.to(x.dtype))
        return module
    if node.op == "call_method":
        return lambda x: getattr(x, node.target)(*(cast(r, x) for r in rest), **kwargs)
    return lambda x: node.target(x, *(cast(r, x) for r in rest), **{k: cast(v, x) for k, v in kwargs.items()})


class _RuleInterpreter(fx.Interpreter):
    """Runs a planned tail, routing each non-linear node through its rule."""

    def __init__(self, plan: TailPlan, mode: str, epsilon: float):
        super().__init__(plan.tail)
        self.plan = plan
        self.mode = mode
        self.epsilon = epsilon

    def run_node(self, node: fx.Node):
        step = self.plan.steps.get(node)
        if step is None:
            return super().run_node(node)
        if node.op == "call_module":
            module = self.plan.tail.get_submodule(node.target)
            if isinstance(module, ops.EVAL_ONLY_MODULES) and module.training:
                raise ops.unsupported(node, self.plan.tail,
                                   "which is in training mode (not linear); call .eval()")
        stacked = self.mode == "rescale"
        if step.kind == "linear" or (step.kind == "max_pool" and not stacked):
            out = super().run_node(node)
        else:
            args, kwargs = self.fetch_args_kwargs_from_env(node)
            if step.kind == "elementwise":
                function = _elementwise_function(node, self.plan.tail, args, kwargs)
                out = _Rescale.apply(args[0], function, stacked)
            elif step.kind == "max_pool":
                self._check_batch(node, args[0])
                out = _MaxPool.apply(args[0], _max_pool_with_indices(node, self.plan.tail, args, kwargs))
            else:  # product
                if not stacked:
                    raise ops.unsupported(node, self.plan.tail,
                                       "a product of two activations, which LRP has no rule for")
                self._check_batch(node, args[0], args[1])
                out = _Product.apply(args[0], args[1])
        if self.mode == "lrp" and step.weighted and isinstance(out, torch.Tensor):
            out = _EpsilonStabiliser.apply(out, self.epsilon)
        return out

    def _check_batch(self, node: fx.Node, *tensors: torch.Tensor) -> None:
        for t in tensors:
            if not isinstance(t, torch.Tensor) or t.dim() < 3 or t.shape[0] != self.rows:
                raise ops.unsupported(node, self.plan.tail,
                                   "whose input is not a batch of feature maps [N, C, ...] (one row per "
                                   "input)")

    def run_rows(self, x: torch.Tensor) -> torch.Tensor:
        self.rows = x.shape[0]
        return self.run(x)


# ------------------------------------------------------------------------------------------ public functions
@dataclass
class Attribution:
    """Per-element attributions of the activations and the outputs they explain.

    ``attributions`` [B, K, h, w]: DeepLIFT contributions (A − A₀) ⊙ m, or LRP relevance A ⊙ g;
    ``coefficients`` [B, K]: their spatial sums; ``output`` [B] the target output F_c(A);
    ``reference_output`` [B] F_c(A₀) (DeepLIFT; zeros for LRP); ``logits`` [B, classes] = F(A).
    """

    attributions: torch.Tensor
    coefficients: torch.Tensor
    output: torch.Tensor
    reference_output: torch.Tensor
    logits: torch.Tensor


def _check_targets(targets: torch.Tensor, batch: int, classes: int) -> torch.Tensor:
    if not isinstance(targets, torch.Tensor) or targets.dtype != torch.long or targets.shape != (batch,):
        raise ValueError(f"targets must be a LongTensor of shape [{batch}]")
    if batch and (int(targets.min()) < 0 or int(targets.max()) >= classes):
        raise ValueError(f"a target class is out of range for a tail with {classes} outputs")
    return targets


def _check_acts(acts: object) -> torch.Tensor:
    if not isinstance(acts, torch.Tensor) or not acts.is_floating_point():
        raise TypeError("activations must be a floating-point tensor [B, K, ...]")
    if acts.dim() < 2 or acts.shape[0] == 0:
        raise ValueError(f"activations must be a non-empty batch [B, K, ...], got shape {tuple(acts.shape)}")
    return acts.detach()


def broadcast_reference(reference: torch.Tensor | None, acts: torch.Tensor) -> torch.Tensor:
    """The reference activations as a tensor of ``acts``' shape: None → zeros (LIFT-CAM's reference); a tensor
    of shape [K, …], [1, K, …] or [B, K, …] is broadcast over the batch."""
    if reference is None:
        return torch.zeros_like(acts)
    if not isinstance(reference, torch.Tensor) or not reference.is_floating_point():
        raise TypeError("reference activations must be a floating-point tensor")
    if reference.dim() == acts.dim() - 1:
        reference = reference.unsqueeze(0)
    if reference.shape[1:] != acts.shape[1:] or reference.shape[0] not in (1, acts.shape[0]):
        raise ValueError(f"reference activations of shape {tuple(reference.shape)} do not match activations "
                         f"of shape {tuple(acts.shape)}")
    return reference.detach().to(device=acts.device, dtype=acts.dtype).expand_as(acts)


def deeplift(tail: nn.Module | TailPlan, acts: torch.Tensor, targets: torch.Tensor,
             reference: torch.Tensor | None = None) -> Attribution:
    """DeepLIFT-Rescale contributions of the activations ``acts`` [B, K, …] to the target outputs of ``tail``,
    against ``reference`` activations (None: all zeros). ``targets``: LongTensor [B].

    Completeness holds to float rounding: ``attributions.sum(dims) == output − reference_output``.
    """
    plan = tail if isinstance(tail, TailPlan) else plan_tail(tail)
    acts = _check_acts(acts)
    reference = broadcast_reference(reference, acts)
    batch = acts.shape[0]
    with torch.enable_grad():
        leaf = acts.clone().requires_grad_(True)
        logits = _RuleInterpreter(plan, "rescale", 0.0).run_rows(torch.cat([leaf, reference]))
        _check_logits(logits, 2 * batch)
        targets = _check_targets(targets, batch, logits.shape[1])
        picked = logits.gather(1, torch.cat([targets, targets]).view(-1, 1)).squeeze(1)
        (multipliers,) = torch.autograd.grad(picked[:batch].sum(), leaf)
    contributions = (acts - reference) * multipliers
    return Attribution(attributions=contributions, coefficients=contributions.flatten(2).sum(2),
                       output=picked[:batch].detach(), reference_output=picked[batch:].detach(),
                       logits=logits[:batch].detach())


def lrp(tail: nn.Module | TailPlan, acts: torch.Tensor, targets: torch.Tensor,
        epsilon: float = DEFAULT_LRP_EPSILON) -> Attribution:
    """LRP-ε relevance A ⊙ g of the activations for the target outputs of ``tail`` (see the module docstring).

    The relevance sums to the target output minus what the biases absorb; with a linear tail and a tiny ε it
    equals the DeepLIFT contributions against the zero reference.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    plan = tail if isinstance(tail, TailPlan) else plan_tail(tail)
    acts = _check_acts(acts)
    batch = acts.shape[0]
    with torch.enable_grad():
        leaf = acts.clone().requires_grad_(True)
        # a copy, not the leaf itself: backward hooks on the tail's first module (profilers' module trackers)
        # cannot handle a leaf input under autograd.grad
        logits = _RuleInterpreter(plan, "lrp", float(epsilon)).run_rows(leaf.clone())
        _check_logits(logits, batch)
        targets = _check_targets(targets, batch, logits.shape[1])
        picked = logits.gather(1, targets.view(-1, 1)).squeeze(1)
        (grads,) = torch.autograd.grad(picked.sum(), leaf)
    relevance = acts * grads
    return Attribution(attributions=relevance, coefficients=relevance.flatten(2).sum(2),
                       output=picked.detach(), reference_output=torch.zeros_like(picked.detach()),
                       logits=logits.detach())


def _check_logits(logits: object, rows: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != rows:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TailError(f"the tail must return logits [N, classes] with one row per input, got {shape}")


def plan_for_layer(model: nn.Module, layer_name: str, tail: nn.Module | None = None) -> TailPlan:
    """The plan of the tail after ``layer_name``: derived with :func:`camrepro.methods.tail.extract_tail`, or
    ``tail`` itself (any traceable module mapping the layer's output to the logits) when given."""
    from camrepro.methods.tail import extract_tail

    return plan_tail(extract_tail(model, layer_name) if tail is None else as_graph_module(tail))
