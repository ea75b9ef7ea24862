"""Channels-last inputs for the forward-only loops: same numbers, and a model that cannot take them still runs."""

from __future__ import annotations

import torch
from conftest import LAYER, make_linear_tail_net
from torch import nn

from camrepro import methods, metrics
from camrepro.tensors import channels_last, forward_channels_last


class ViewNet(nn.Module):
    """A network that flattens its feature maps with ``.view`` (as much user code does): it cannot take
    channels-last strides."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(x)
        return self.fc(a.view(a.shape[0], -1))


def test_channels_last_changes_strides_only_and_only_for_4d_cpu_tensors():
    x = torch.rand(2, 3, 5, 5)
    y = channels_last(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    maps = torch.rand(2, 5, 5)
    assert channels_last(maps) is maps


def test_a_model_that_cannot_take_channels_last_is_run_as_given():
    net = ViewNet().eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        try:
            net(channels_last(x))
            raised = False
        except RuntimeError:
            raised = True
        assert raised  # the premise: this model refuses channels-last inputs
        assert torch.equal(forward_channels_last(net, x), expected)
    maps = methods.get("score-cam")(net, layer="features")(x, [0, 1])
    assert maps.shape == (2, 8, 8)
    result = metrics.drop_increase_gain(net, x, torch.ones(2, 8, 8), [0, 1])
    assert result["AI"] == 0.0 and (result["p"] == result["o"]).all()


def test_an_all_ones_map_keeps_o_equal_to_p_exactly():
    # Fake-CAM's Average Increase rests on o == p for the all-ones map: both go through the same layout
    net = make_linear_tail_net().eval()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    result = metrics.drop_increase_gain(net, x, torch.ones(3, 8, 8), [0, 1, 2])
    assert (result["p"] == result["o"]).all() and result["AI"] == 0.0
    assert methods.get("score-cam")(net, layer=LAYER)(x, [0, 1, 2]).shape == (3, 8, 8)


def test_a_refusing_model_costs_one_failed_attempt_per_loop_not_one_per_batch():
    net = ViewNet().eval()
    calls = []

    def forward(x):
        calls.append(x.is_contiguous())
        return net(x)

    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        for _ in range(3):
            forward_channels_last(forward, x)
    assert calls == [False, True, True, True]   # one refused channels-last attempt, then the tensors as given


def test_every_gradient_method_runs_on_a_model_that_refuses_channels_last():
    # the capture hook runs before the refusal (the .view is after the layer): its first capture is dropped
    net = ViewNet().eval()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for name, options in (("grad-cam", {}), ("layer-cam", {}), ("lift-cam", {}), ("opti-cam", {"iterations": 3}),
                          ("integrated-gradients", {"steps": 4})):
        cls = methods.get(name)
        method = cls(ViewNet().eval(), layer="features", **options) if cls.needs_layer else cls(
            ViewNet().eval(), **options)
        maps = method(x, [0, 1])
        assert maps.shape == (2, 8, 8) and torch.isfinite(maps).all(), name
    assert methods.get("grad-cam")(net, layer="features")(x, [0, 1]).shape == (2, 8, 8)


def test_a_refused_layout_is_remembered_per_model_across_explainers():
    net = ViewNet().eval()
    strides = []
    net.features.register_forward_pre_hook(lambda _m, inputs: strides.append(inputs[0].is_contiguous()))
    x = torch.rand(2, 3, 8, 8)
    for _ in range(2):   # a new explainer of the same model does not try channels-last again
        methods.get("grad-cam")(net, layer="features")(x, [0, 1])
    assert strides == [False, True, True]


def test_channels_last_passes_give_the_contiguous_results_in_float64(monkeypatch):
    # the layout changes the order of floating-point sums only: in float64 the maps agree to rounding
    torchvision = __import__("pytest").importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).double().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    calls = {"grad-cam": {}, "score-cam": {}, "opti-cam": {"iterations": 5}, "integrated-gradients": {"steps": 4}}

    def run() -> dict[str, torch.Tensor]:
        out = {}
        for name, options in calls.items():
            cls = methods.get(name)
            method = cls(net, layer="layer3", **options) if cls.needs_layer else cls(net, **options)
            out[name] = method(x, [1, 3])
        return out

    fast = run()
    import camrepro.tensors as tensors
    monkeypatch.setattr(tensors, "channels_last", lambda images: images)
    plain = run()
    for name in calls:
        assert torch.allclose(fast[name], plain[name], atol=1e-9), name
