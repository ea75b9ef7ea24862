"""Building methods by name and timing their explanations: the part every chapter shares."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn

from camrepro import methods
from camrepro.methods.base import Explainer


def build(name: str, net: nn.Module, layer: str, options: Mapping[str, object] | None = None) -> Explainer:
    """``methods.get(name)`` on ``net``, at ``layer`` when the method explains a layer."""
    cls = methods.get(name)
    return cls(net, layer if cls.needs_layer else None, **dict(options or {}))


def _sync(device: torch.device) -> None:
    # Timing boundaries only: CUDA kernels run asynchronously, so a clock read needs the queue drained.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def explain(method: Explainer, images: torch.Tensor, targets: torch.Tensor, *, chunk: int) -> tuple[torch.Tensor, float]:
    """Maps [N, H, W] for ``images`` in chunks of ``chunk`` images, and the wall time per image (seconds)."""
    out = []
    _sync(images.device)
    start = time.perf_counter()
    for i in range(0, images.shape[0], chunk):
        out.append(method(images[i:i + chunk], targets[i:i + chunk]))
    _sync(images.device)
    return torch.cat(out), (time.perf_counter() - start) / images.shape[0]


def time_per_image(method: Explainer, images: torch.Tensor, targets: torch.Tensor, *, batch: int,
                   repeats: int) -> float:
    """Median over ``repeats`` of the time per image for one call on ``batch`` images (after one warm-up)."""
    x, t = images[:batch], targets[:batch]
    method(x, t)
    times = []
    for _ in range(repeats):
        _sync(x.device)
        start = time.perf_counter()
        method(x, t)
        _sync(x.device)
        times.append((time.perf_counter() - start) / x.shape[0])
    return float(torch.tensor(times).median())


def forward_time_per_image(net: nn.Module, images: torch.Tensor, *, batch: int, repeats: int) -> float:
    """The unit of cost: one plain forward pass, median time per image."""
    x = images[:batch]
    with torch.no_grad():
        net(x)
        times = []
        for _ in range(repeats):
            _sync(x.device)
            start = time.perf_counter()
            net(x)
            _sync(x.device)
            times.append((time.perf_counter() - start) / x.shape[0])
    return float(torch.tensor(times).median())


@torch.no_grad()
def predict(net: nn.Module, images: torch.Tensor, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes, their softmax probabilities) in chunks."""
    classes, probs = [], []
    for i in range(0, images.shape[0], chunk):
        p = net(images[i:i + chunk]).softmax(1)
        conf, cls = p.max(1)
        classes.append(cls)
        probs.append(conf)
    return torch.cat(classes), torch.cat(probs)
