"""Opt-in bfloat16 autocast (``precision="bf16"``): maps that agree with float32 on the packaged networks,
refused with a reason where they do not, never the default."""

from __future__ import annotations

import pytest
import torch

from camrepro import methods, models
from camrepro.methods.base import precision_scope

AUTOCAST_METHODS = [n for n in methods.REGISTRY if methods.get(n).autocast_applies and n != "attention"]


def test_the_default_is_float32_and_an_unknown_precision_is_named(linear_tail_net):
    cam = methods.get("grad-cam")(linear_tail_net, layer="features")
    assert cam.precision == "float32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        methods.get("grad-cam")(linear_tail_net, layer="features", precision="fp8")
    with pytest.raises(ValueError, match="unknown precision"):
        precision_scope("half", torch.device("cpu"))


@pytest.mark.parametrize("name", [n for n in methods.REGISTRY if not methods.get(n).autocast_applies])
def test_a_method_autocast_cannot_reproduce_refuses_it_and_says_why(name, linear_tail_net):
    cls = methods.get(name)
    assert cls.autocast_refusal
    with pytest.raises(ValueError, match=f"cannot run in bf16: {cls.autocast_refusal[:30]}"):
        cls(linear_tail_net, layer="features" if cls.needs_layer else None, precision="bf16")


def _packaged(model: str, size: int = 160):
    from camrepro.data.photos import load_photos

    net, _ = models.load(model, size=size)
    x = load_photos("ai-benchmark", n=2, size=size).images
    with torch.no_grad():
        return net, x, net(x).argmax(1)


def _correlations(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [float(torch.corrcoef(torch.stack([a[i].flatten(), b[i].flatten()]))[0, 1]) for i in range(len(a))]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mobilenet_v2", "efficientnet_lite0"])
def test_cpu_bf16_maps_correlate_with_float32_maps_on_the_packaged_networks(model):
    net, x, targets = _packaged(model)
    layer = models.default_layer(model)
    for name in AUTOCAST_METHODS:
        cls = methods.get(name)
        kwargs = {"layer": layer} if cls.needs_layer else {}
        exact = cls(net, **kwargs)(x, targets)
        with torch.random.fork_rng(devices=[]):
            fast = cls(net, **kwargs, precision="bf16")(x, targets)
        assert fast.dtype == torch.float32 and fast.shape == exact.shape
        if name == "fake-cam":
            assert torch.equal(fast, exact)
            continue
        assert min(_correlations(exact, fast)) >= 0.999, name
    # the float32 run after a bf16 one is untouched (autocast ends with the call)
    grad = methods.get("grad-cam")(net, layer=layer)
    assert torch.equal(grad(x, targets), grad(x, targets))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model", ["mobilenet_v2", "efficientnet_lite0"])
def test_cuda_bf16_maps_correlate_with_float32_maps(model):
    net, x, targets = _packaged(model)
    device = torch.device("cuda")
    net, x, targets = net.to(device), x.to(device), targets.to(device)
    layer = models.default_layer(model)
    for name in AUTOCAST_METHODS:
        cls = methods.get(name)
        kwargs = {"layer": layer} if cls.needs_layer else {}
        exact = cls(net, **kwargs)(x, targets)
        fast = cls(net, **kwargs, precision="bf16")(x, targets)
        assert fast.device.type == "cuda" and fast.dtype == torch.float32
        if name != "fake-cam":
            assert min(_correlations(exact.cpu(), fast.cpu())) >= 0.999, name
