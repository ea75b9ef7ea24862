"""What a method costs beyond its wall time: network passes per image and floating-point operations in
forward-pass equivalents. Both are properties of the computation, not of the machine's load, so they back
the timing claims with numbers a busy machine cannot blur."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@contextlib.contextmanager
def count_network_passes(net: nn.Module) -> Iterator[dict[str, int]]:
    """Counts the images that go through ``net`` as a whole (``counter["rows"]``) while the block runs: a
    method's full forward passes, not the evaluations of the tail alone (which call only the tail's
    modules)."""
    counter = {"rows": 0}

    def hook(_module: nn.Module, inputs: tuple) -> None:
        if inputs and isinstance(inputs[0], torch.Tensor):
            counter["rows"] += inputs[0].shape[0]

    handle = net.register_forward_pre_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


def flops(function: Callable[..., object], *args: object) -> int:
    """Floating-point operations (convolutions and matrix products, forward and backward) of
    ``function(*args)``."""
    with FlopCounterMode(display=False) as counter:
        function(*args)
    return int(counter.get_total_flops())


def forward_equivalents(method: Callable[..., object], net: nn.Module, image: torch.Tensor,
                        target: torch.Tensor) -> float:
    """The FLOPs of explaining one image over the FLOPs of one forward pass of the network on it."""
    with torch.no_grad():
        unit = flops(net, image)
    return flops(method, image, target) / unit
