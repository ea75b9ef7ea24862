"""CAM (Zhou et al., CVPR 2016): the classifier's own weights as channel coefficients."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from camrepro.methods import operations as ops
from camrepro.methods.base import ChannelCAM
from camrepro.methods.tail import TailError, check_tail, extract_tail

_SPATIAL_DIMS = ({2, 3}, {-2, -1}, {2, -1}, {-2, 3})


def _is_global_size(size: object) -> bool:
    return size == 1 or size == (1, 1) or size == [1, 1]


def _is_spatial_mean(node: fx.Node) -> bool:
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    return isinstance(dims, (tuple, list)) and set(dims) in _SPATIAL_DIMS


def linear_classifier_weight(tail: fx.GraphModule, layer_name: str) -> Callable[[], torch.Tensor]:
    """A function returning the weight [classes, K] of the one linear layer of a CAM tail.

    The tail must be global average pooling, then only flatten/reshape/dropout, then one linear layer: the
    architecture for which the paper's map is defined. Anything else is a :class:`TailError` naming the first
    operation that does not fit. The weight is read when the function is called, so a network trained after
    the method was built is explained with its current weights.
    """
    steps: list[tuple[str, fx.Node]] = []
    weight: Callable[[], torch.Tensor] | None = None
    for node in tail.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        kind = "other"
        if node.op == "call_module":
            module = tail.get_submodule(node.target)
            if isinstance(module, nn.Linear):
                kind, weight = "linear", (lambda m=module: m.weight)
            elif isinstance(module, nn.AdaptiveAvgPool2d) and _is_global_size(module.output_size):
                kind = "pool"
            elif isinstance(module, ops.PASSIVE_MODULES):
                kind = "passive"
        elif node.op == "call_function":
            source = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            if node.target is F.linear and isinstance(source, fx.Node) and source.op == "get_attr":
                kind, weight = "linear", (lambda path=source.target: tail.get_parameter(path))
            elif node.target is F.adaptive_avg_pool2d and _is_global_size(
                node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            ):
                kind = "pool"
            elif node.target is torch.mean and _is_spatial_mean(node):
                kind = "pool"
            elif node.target in ops.PASSIVE_FUNCTIONS:
                kind = "passive"
        elif node.op == "call_method":
            if node.target == "mean" and _is_spatial_mean(node):
                kind = "pool"
            elif node.target in ops.PASSIVE_METHODS:
                kind = "passive"
        if kind == "other":
            raise TailError(
                f"CAM needs the layer {layer_name!r} to be followed by global average pooling and one linear "
                f"layer (with only flatten/dropout around them), but its tail contains "
                f"{ops.name_operation(node, tail)}; "
                "explain the last convolutional layer, or use a gradient-based method such as grad-cam"
            )
        if kind != "passive":
            steps.append((kind, node))
    if [kind for kind, _ in steps] != ["pool", "linear"]:
        found = ", ".join(ops.name_operation(node, tail) for _, node in steps) or "no pooling and no linear layer"
        raise TailError(
            f"CAM needs exactly one global average pooling followed by one linear layer after "
            f"{layer_name!r}; its tail has {found}"
        )
    assert weight is not None
    return weight


class CAM(ChannelCAM):
    """CAM: the channel coefficients are the target row of the linear classifier that follows GAP.

    Paper: B. Zhou, A. Khosla, A. Lapedriza, A. Oliva, A. Torralba, "Learning Deep Features for Discriminative
    Localization", CVPR 2016, Sec. 2: with S_c = Σ_k w_k^c F_k and F_k = Σ_xy f_k(x, y) (global average
    pooling), the class activation map is M_c(x, y) = Σ_k w_k^c f_k(x, y).

    Defined only when the layer is followed by global average pooling and one linear layer; the constructor
    derives that tail (:func:`camrepro.methods.tail.extract_tail`, or ``tail=``) and raises a ``TailError``
    (a ValueError) naming the first operation that is neither pooling, flatten, dropout nor linear.

    Cost: one forward pass, no backward (plus a pass of the pooling + linear tail that verifies the tail
    reproduces the logits, negligible).

    Example:
        >>> cam = CAM(net, layer="features.18")
        >>> maps = cam(images)                 # [B, H, W] in [0, 1]
        >>> w = cam.weights(images, targets)   # the rows W[targets] of the classifier

    Deviations from the paper: the map is ReLU(Σ_k w_k^c A_k) (as every CAM of this package) before the
    per-image min-max normalisation, where the paper normalises M_c without clipping negative evidence.
    """

    name = "cam"
    paper = "Zhou et al., CVPR 2016"
    needs_gradients = False
    forward_passes = "1 forward"
    range_free = True  # check_range=False accepted (see Explainer)

    def __init__(
        self, model: nn.Module, layer: str | nn.Module | None = None, *, tail: nn.Module | None = None,
        check_range: bool = True,
        precision: str = "float32",
    ):
        super().__init__(model, layer, check_range=check_range, precision=precision)
        if tail is None:
            graph_tail = extract_tail(model, self.layer_name)
        elif isinstance(tail, fx.GraphModule):
            graph_tail = tail
        elif isinstance(tail, nn.Module):
            try:
                graph_tail = fx.symbolic_trace(tail)
            except Exception as exc:  # fx raises many types for untraceable code
                raise TailError(
                    f"CAM could not trace the given tail {type(tail).__name__} to check that it is "
                    f"GAP + linear ({type(exc).__name__}: {exc})"
                ) from exc
        else:
            raise TypeError(f"tail must be an nn.Module, got {type(tail).__name__}")
        self.tail = graph_tail
        self._classifier_weight = linear_classifier_weight(graph_tail, self.layer_name)

    def _channel_weights(self, images, acts, logits, targets):
        check_tail(self.tail, acts, logits, "CAM")
        weight = self._classifier_weight()
        if weight.dim() != 2 or weight.shape[1] != acts.shape[1]:
            raise TailError(
                f"CAM: the linear layer has weight shape {tuple(weight.shape)} but layer "
                f"{self.layer_name!r} has {acts.shape[1]} channels"
            )
        return weight.detach().to(acts.device, acts.dtype)[targets]
