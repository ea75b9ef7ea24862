"""The network tail after a layer, F with logits = F(A), derived generically by graph tracing.

LIFT-CAM's DeepLIFT contributions, A-FMI's feature-space path integral, Ablation-CAM's ablations and CAM's
linear-tail check all need to run the part of the network that follows the explained layer on activations
other than the ones the image produced. :func:`extract_tail` traces the model with ``torch.fx`` (the layer kept
as one opaque call), keeps every operation that depends on the layer's output, and checks that none of them
also reads something computed before the layer (a skip connection around it): then the tail is a function of
the activations alone and is returned as a ``GraphModule`` sharing the model's parameters. A model that cannot be
traced, or whose tail is not separable, gets an error that says so and how to pass ``tail=`` explicitly.
"""

from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from camrepro.tensors import evaluation_mode, not_logits_error


class TailError(ValueError):
    """The tail after a layer cannot be derived automatically."""


class _LayerLeafTracer(fx.Tracer):
    def __init__(self, layer_name: str):
        super().__init__()
        self.layer_name = layer_name

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname == self.layer_name or super().is_leaf_module(m, qualname)


def extract_tail(model: nn.Module, layer_name: str) -> fx.GraphModule:
    """A module mapping the output of ``layer_name`` to the model's output."""
    tracer = _LayerLeafTracer(layer_name)
    try:
        # Methods run the model in eval mode, so the tail is traced in eval mode too: a forward that branches
        # on self.training must give the evaluation branch whatever mode the model is in when a method is built.
        with evaluation_mode(model):
            graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types for untraceable Python control flow
        raise TailError(
            f"cannot derive the tail of {type(model).__name__} after {layer_name!r}: torch.fx could not trace "
            f"the model ({type(exc).__name__}: {exc}); pass tail= a module that maps the layer's output to the "
            "logits") from exc
    nodes = list(graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and n.target == layer_name]
    if len(calls) != 1:
        raise TailError(f"layer {layer_name!r} is called {len(calls)} times in {type(model).__name__}'s forward; "
                        "a tail exists only for a layer called exactly once")
    start = calls[0]
    downstream = {start}
    for node in nodes[nodes.index(start) + 1:]:
        if any(inp in downstream for inp in node.all_input_nodes):
            downstream.add(node)
    output = next(n for n in nodes if n.op == "output")
    if not isinstance(output.args[0], fx.Node):  # a tuple or dict built in forward
        raise not_logits_error(output.args[0], model)
    if output not in downstream:
        raise TailError(f"the output of {type(model).__name__} does not depend on layer {layer_name!r}")
    for node in downstream - {start}:
        for inp in node.all_input_nodes:
            if inp not in downstream and inp.op != "get_attr":
                raise TailError(
                    f"after {layer_name!r}, the operation {node.format_node()} also reads {inp.name!r}, which is "
                    "computed before the layer (a skip connection around it): the tail is not a function of the "
                    "layer's output alone. Explain a layer at a block boundary, or pass tail= explicitly")
    tail = fx.Graph()
    env: dict[fx.Node, fx.Node] = {start: tail.placeholder("activations")}

    def lookup(node: fx.Node) -> fx.Node:
        if node not in env:  # parameters and buffers read with get_attr
            env[node] = tail.node_copy(node, lookup)
        return env[node]

    for node in nodes:
        if node in downstream and node is not start:
            env[node] = tail.node_copy(node, lookup)
    tail.lint()
    return fx.GraphModule(tracer.root, tail, class_name=f"TailAfter_{layer_name.replace('.', '_')}")


def check_tail(tail: nn.Module, acts: torch.Tensor, logits: torch.Tensor, what: str) -> None:
    """Raise when ``tail(acts)`` does not reproduce the logits the model produced (a wrong tail= argument)."""
    with torch.no_grad():
        out = tail(acts)
    if not isinstance(out, torch.Tensor):
        raise TailError(f"the tail used for {what} returns {type(out).__name__}, not logits")
    check_reproduces(out, logits, what)


def check_reproduces(tail_logits: torch.Tensor, logits: torch.Tensor, what: str) -> None:
    """TailError when the tail's logits on the captured activations differ from the model's (beyond 1e-3
    relative to the largest logit), as with a wrong ``tail=``."""
    if tail_logits.shape != logits.shape:
        raise TailError(f"the tail used for {what} returns shape {tuple(tail_logits.shape)}, the model "
                        f"{tuple(logits.shape)}")
    scale = float(logits.detach().abs().max())
    if not torch.allclose(tail_logits.detach(), logits.detach(), rtol=1e-3, atol=1e-3 * max(scale, 1e-12)):
        gap = float((tail_logits.detach() - logits.detach()).abs().max())
        raise TailError(f"the tail used for {what} does not reproduce the model's logits "
                        f"(max difference {gap:.3g})")
