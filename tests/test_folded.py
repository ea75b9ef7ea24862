"""Folded copies for the forward-only loops (camrepro.models.folded): the same function, refused when unsafe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camrepro import methods, metrics
from camrepro.models import folded

torchvision = pytest.importorskip("torchvision")


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _trained_looking(net: nn.Module) -> nn.Module:
    """Random running statistics, so that folding has something to change."""
    generator = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return net.eval()


def test_the_folded_copy_computes_the_same_logits_without_batch_norms():
    torch.manual_seed(0)
    net = _trained_looking(torchvision.models.mobilenet_v2(num_classes=7))
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    copy = folded.folded_forward(net, x)
    assert copy is not net and _norms(copy) == 0 and _norms(net) == 52
    with torch.no_grad():
        assert torch.allclose(copy(x), net(x), atol=1e-4, rtol=1e-4)
    assert folded.folded_forward(net, x) is copy   # cached while the weights are unchanged
    assert all(p.requires_grad for p in net.parameters())   # the model itself is untouched


def test_a_changed_model_is_folded_again():
    torch.manual_seed(0)
    net = _trained_looking(torchvision.models.resnet18(num_classes=4))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    first = folded.folded_forward(net, x)
    with torch.no_grad():
        net.conv1.weight.mul_(2.0)   # an in-place change, as an optimiser step makes
        second = folded.folded_forward(net, x)
        assert second is not first and torch.allclose(second(x), net(x), atol=1e-4, rtol=1e-4)


def test_models_that_must_run_as_they_are():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    training = torchvision.models.resnet18(num_classes=4).train()
    assert folded.folded_forward(training, x) is training          # batch statistics, not running ones
    hooked = _trained_looking(torchvision.models.resnet18(num_classes=4))
    hooked.layer1.register_forward_hook(lambda _m, _i, out: out * 2)
    assert folded.folded_forward(hooked, x) is hooked              # a traced copy would skip the hook

    class Branching(nn.Module):   # control flow on values: fx cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm, self.fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.norm(self.conv(x))
            if a.mean() > 0:
                a = a * 2
            return self.fc(a.mean((2, 3)))

    branching = Branching().eval()
    assert folded.folded_forward(branching, x) is branching
    no_norm = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(2)).eval()
    no_norm(x)
    assert folded.folded_forward(no_norm, x) is no_norm


def test_a_copy_that_disagrees_is_not_used(monkeypatch):
    net = _trained_looking(torchvision.models.resnet18(num_classes=4))
    wrong = _trained_looking(torchvision.models.resnet18(num_classes=4))
    monkeypatch.setattr(folded, "_fold", lambda model: wrong)
    assert folded.folded_forward(net, torch.rand(1, 3, 32, 32)) is net


def test_the_methods_and_metrics_that_fold_give_the_unfolded_results_in_float64(monkeypatch):
    torch.manual_seed(0)
    net = _trained_looking(torchvision.models.resnet18(num_classes=5)).double()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    maps = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def run() -> list[torch.Tensor]:
        return [methods.get("score-cam")(net, layer="layer3")(x, [1, 3]),
                methods.get("opti-cam")(net, layer="layer3", iterations=5)(x, [1, 3]),
                methods.get("integrated-gradients")(net, steps=4)(x, [1, 3]),
                *metrics.masked_probabilities(net, x, maps, [1, 3]),
                torch.as_tensor(metrics.insertion_deletion(net, x, maps, [1, 3], steps=4)["curves"])]

    assert folded.folded_forward(net, x) is not net
    fast = run()
    monkeypatch.setattr(folded, "_fold", lambda model: None)
    folded._COPIES.clear()
    plain = run()
    for a, b in zip(fast, plain):
        assert torch.allclose(a, b, atol=1e-10)
