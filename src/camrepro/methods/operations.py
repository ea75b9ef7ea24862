"""The one table of torch.fx operations: what each operation a traced network can contain is, for every
consumer of a graph (the DeepLIFT / LRP rules of the tails, pixel DeepLIFT on the whole network,
CAM's GAP + linear check).

:func:`classify` gives an operation that depends on the input of the graph one :class:`Step` kind:

- ``"linear"``: affine in that input (convolution, linear layer, batch-norm and dropout in eval mode, average
  pooling, padding, reshapes, addition, scaling by a constant, and metadata such as ``.size()``);
- ``"elementwise"``: an element-wise non-linearity (ReLU, ReLU6, PReLU, hard-swish, sigmoid, abs, …, as a
  module, a function or a tensor method) that reads the input through its first argument only;
- ``"max_pool"``: max-pooling without indices;
- ``"product"``: the product of two input-dependent tensors.

Anything else — softmax, layer-norm, a max over a dimension, a division by the input, batch-norm called in
training mode — raises :class:`UnsupportedTailOperation` naming it. :data:`PASSIVE_MODULES`,
:data:`PASSIVE_FUNCTIONS` and :data:`PASSIVE_METHODS` are the linear operations that only move or drop values
(reshapes, dropout in eval mode, identity), which CAM allows between its pooling and its linear layer.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from camrepro.methods.tail import TailError


class UnsupportedTailOperation(TailError):
    """An operation in the tail has no DeepLIFT (or LRP) rule here."""


LINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.Flatten, nn.Unflatten, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
    nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.PixelShuffle, nn.PixelUnshuffle,
)
# Linear only in eval mode (batch statistics or random masks otherwise).
EVAL_ONLY_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                      nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
# Layers that captum's LRP gives the ε-rule (and we stabilise in LRP mode).
WEIGHTED_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d,
                     nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear,
                     nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                     nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                     nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
ELEMENTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink,
    nn.Softshrink, nn.Hardshrink, nn.Threshold, nn.PReLU,
)
MAX_POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)

LINEAR_FUNCTIONS: set[Callable] = {
    F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.linear,
    F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.pad, F.interpolate, torch.conv1d, torch.conv2d, torch.conv3d,
    torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute, torch.transpose,
    torch.movedim,
    torch.cat, torch.concat, torch.stack, torch.narrow, torch.chunk, torch.split, torch.mean, torch.sum,
    torch.add, torch.sub, torch.neg,
    operator.add, operator.iadd, operator.sub, operator.isub, operator.neg, operator.pos, operator.getitem,
}
WEIGHTED_FUNCTIONS: set[Callable] = {
    F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.linear,
    F.batch_norm, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
}
# name of the flag that must be False for the function to be linear, and its position
EVAL_ONLY_FUNCTIONS: dict[Callable, tuple[str, int, bool]] = {
    F.batch_norm: ("training", 5, False),
    F.dropout: ("training", 2, True), F.dropout1d: ("training", 2, True), F.dropout2d: ("training", 2, True),
    F.dropout3d: ("training", 2, True), F.alpha_dropout: ("training", 2, False),
}
# x * c and x / c are linear when c does not depend on the activations (only the numerator may)
SCALING_FUNCTIONS: set[Callable] = {operator.mul, operator.imul, torch.mul,
                                     operator.truediv, operator.itruediv, torch.div, torch.true_divide}
DIVISIONS: set[Callable] = {operator.truediv, operator.itruediv, torch.div, torch.true_divide}
PRODUCT_FUNCTIONS: set[Callable] = {operator.mul, operator.imul, torch.mul}
ELEMENTWISE_FUNCTIONS: set[Callable] = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.hardswish,
    F.hardsigmoid, F.hardtanh, F.sigmoid, torch.sigmoid, F.tanh, torch.tanh, F.softplus, F.softsign,
    F.logsigmoid, F.tanhshrink, F.softshrink, F.hardshrink, F.threshold, torch.clamp, torch.clip, torch.exp,
    F.prelu, torch.abs, operator.abs,
}
# the position of ``return_indices`` in each max-pooling function's signature
MAX_POOL_FUNCTIONS: dict[Callable, int] = {
    F.max_pool1d: 6, F.max_pool2d: 6, F.max_pool3d: 6,
    F.adaptive_max_pool1d: 2, F.adaptive_max_pool2d: 2, F.adaptive_max_pool3d: 2,
}
METADATA_FUNCTIONS: set[Callable] = {builtins.getattr, builtins.len}

LINEAR_METHODS = {"view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "permute", "transpose",
                   "t", "contiguous", "squeeze", "unsqueeze", "mean", "sum", "expand", "expand_as", "repeat",
                   "narrow", "chunk", "split", "add", "sub", "neg", "clone", "movedim", "swapaxes", "float", "to",
                  "type_as"}
SCALING_METHODS = {"mul", "div", "true_divide"}
DIVISION_METHODS = {"div", "true_divide"}
ELEMENTWISE_METHODS = {"relu", "sigmoid", "tanh", "clamp", "clip", "exp", "abs"}
METADATA_METHODS = {"size", "dim", "numel"}

# Linear operations that only move or drop values (dropout is the identity in eval mode, the only mode a method
# runs a network in): CAM allows them between its global pooling and its linear layer.
PASSIVE_MODULES = (nn.Flatten, nn.Identity, nn.modules.dropout._DropoutNd)
PASSIVE_FUNCTIONS: set[Callable] = {torch.flatten, torch.squeeze, torch.reshape, F.dropout}
PASSIVE_METHODS = {"flatten", "view", "reshape", "squeeze", "contiguous", "size"}


@dataclass(frozen=True)
class Step:
    """How one node of the tail is evaluated: ``kind`` in {"linear", "elementwise", "max_pool", "product"};
    ``weighted``: the node gets LRP's ε-stabiliser; ``description``: the operation, for messages."""

    kind: str
    weighted: bool
    description: str


def describe(node: fx.Node, root: nn.Module) -> str:
    """The operation of ``node`` in words, for messages: "module 'head.0' (Conv2d)", "function torch.relu"."""
    if node.op == "call_module":
        return f"module {node.target!r} ({type(root.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f"method .{node.target}()"
    target = getattr(node.target, "__module__", None)
    name = getattr(node.target, "__name__", repr(node.target))
    return f"function {target + '.' if target else ''}{name}"


def name_operation(node: fx.Node, root: nn.Module) -> str:
    """The operation of ``node`` as a phrase: "the Conv2d module 'head.0'", "the function relu", "the tensor
    method .mean()"."""
    if node.op == "call_module":
        return f"the {type(root.get_submodule(node.target)).__name__} module {node.target!r}"
    if node.op == "call_function":
        return f"the function {getattr(node.target, '__name__', node.target)!s}"
    return f"the tensor method .{node.target}()"


def _argument(node: fx.Node, name: str, position: int, default: object) -> object:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[position] if len(node.args) > position else default


def unsupported(node: fx.Node, root: nn.Module, why: str) -> UnsupportedTailOperation:
    """The error for an operation without a rule, naming it and listing what is supported."""
    return UnsupportedTailOperation(
        f"the tail contains {describe(node, root)} at node {node.name!r} ({node.format_node()}), {why}. "
        "Supported: linear operations (convolution, linear, batch-norm and dropout in eval mode, average "
        "pooling, addition, scaling by constants, reshapes), element-wise activations, max-pooling and "
        "products of two activations. Explain another layer, or pass tail= a module built from supported "
        "operations")


def _first_argument_only(node: fx.Node, dependent: set[fx.Node], root: nn.Module) -> None:
    """An element-wise or pooling node must read the activations through its first argument only."""
    first = node.args[0] if node.args else None
    others = [leaf for arg in [*node.args[1:], *node.kwargs.values()] for leaf in _flatten_arg(arg)]
    if not isinstance(first, fx.Node) or first not in dependent or any(o in dependent for o in others):
        raise unsupported(node, root, "which reads the activations other than through its first argument")


def _flatten_arg(arg: object) -> list[object]:
    if isinstance(arg, (list, tuple)):
        return [x for a in arg for x in _flatten_arg(a)]
    if isinstance(arg, dict):
        return [x for a in arg.values() for x in _flatten_arg(a)]
    return [arg]


def _scaling_step(node: fx.Node, dependent: set[fx.Node], root: nn.Module, division: bool,
                  product_ok: bool) -> Step:
    operands = [leaf for arg in [*node.args, *node.kwargs.values()] for leaf in _flatten_arg(arg)]
    active = [a for a in operands if isinstance(a, fx.Node) and a in dependent]
    description = describe(node, root)
    if len(active) == 1 and (not division or (node.args and node.args[0] is active[0])):
        return Step("linear", False, description)
    if len(active) == 2 and product_ok and not division and len(node.args) == 2 and not node.kwargs:
        return Step("product", False, description)
    raise unsupported(node, root, "which divides by the activations" if division else
                       "which multiplies activations in a way that has no rule here")


def classify(node: fx.Node, root: nn.Module, dependent: set[fx.Node]) -> Step:
    """The :class:`Step` of ``node``, an operation of a graph traced from ``root`` that depends on the graph's
    input (``dependent``: every node that does); :class:`UnsupportedTailOperation` naming it otherwise."""
    description = describe(node, root)
    if node.op == "call_module":
        module = root.get_submodule(node.target)
        kind = type(module)
        if kind in LINEAR_MODULES:
            return Step("linear", kind in WEIGHTED_MODULES, description)
        elif kind in ELEMENTWISE_MODULES:
            _first_argument_only(node, dependent, root)
            return Step("elementwise", False, description)
        elif kind in MAX_POOL_MODULES:
            if getattr(module, "return_indices", False):
                raise unsupported(node, root, "which returns indices")
            _first_argument_only(node, dependent, root)
            return Step("max_pool", True, description)
        else:
            raise unsupported(node, root, "which has no DeepLIFT rule")
    elif node.op == "call_function":
        target = node.target
        if target in EVAL_ONLY_FUNCTIONS:
            flag, position, default = EVAL_ONLY_FUNCTIONS[target]
            if _argument(node, flag, position, default) is not False:
                raise unsupported(node, root, f"which is called with {flag}=True (not linear)")
            return Step("linear", target in WEIGHTED_FUNCTIONS, description)
        elif target in LINEAR_FUNCTIONS:
            return Step("linear", target in WEIGHTED_FUNCTIONS, description)
        elif target in SCALING_FUNCTIONS:
            return _scaling_step(node, dependent, root, target in DIVISIONS, target in PRODUCT_FUNCTIONS)
        elif target in ELEMENTWISE_FUNCTIONS:
            _first_argument_only(node, dependent, root)
            return Step("elementwise", False, description)
        elif target in MAX_POOL_FUNCTIONS:
            if _argument(node, "return_indices", MAX_POOL_FUNCTIONS[target], False):
                raise unsupported(node, root, "which returns indices")
            _first_argument_only(node, dependent, root)
            return Step("max_pool", True, description)
        elif target in METADATA_FUNCTIONS:
            return Step("linear", False, description)
        else:
            raise unsupported(node, root, "which has no DeepLIFT rule")
    elif node.op == "call_method":
        name = node.target
        if name in LINEAR_METHODS or name in METADATA_METHODS:
            return Step("linear", False, description)
        elif name in SCALING_METHODS:
            return _scaling_step(node, dependent, root, name in DIVISION_METHODS, name == "mul")
        elif name in ELEMENTWISE_METHODS:
            _first_argument_only(node, dependent, root)
            return Step("elementwise", False, description)
        else:
            raise unsupported(node, root, "which has no DeepLIFT rule")
    else:
        raise unsupported(node, root, f"an fx node of kind {node.op!r}")


def dependent_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Every node of ``graph`` whose value depends on its one placeholder."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise TailError(f"a tail must take exactly one input (the activations), this one takes "
                        f"{len(placeholders)}")
    dependent = {placeholders[0]}
    for node in graph.nodes:
        if any(inp in dependent for inp in node.all_input_nodes):
            dependent.add(node)
    return dependent
