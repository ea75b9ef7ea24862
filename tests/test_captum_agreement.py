"""LIFT-CAM and A-FMI agree with captum where captum computes the same quantity.

LIFT-CAM's coefficient φ_k is captum's DeepLIFT attribution of the tail after the layer, with the all-zero
reference, summed over the positions of map k; A-FMI's is captum's integrated gradients of the same tail in
feature space, from A(x') to A(x) with the midpoint rule, summed the same way. captum's DeepLIFT applies the
Rescale rule to ``nn.ReLU`` modules, so the tails here use nothing else (it silently falls back to plain
gradients for ReLU6: see ``tests/test_methods_baselines.py``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camrepro import methods

captum_attr = pytest.importorskip("captum.attr")
# captum announces that it sets hooks on the activations
pytestmark = pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")


def relu_net(nonlinear: bool, seed: int = 0) -> nn.Module:
    """float64: 'features' (conv, ReLU) then a tail of 1×1 convs and ReLUs (or just pool + fc)."""
    torch.manual_seed(seed)
    features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2, padding=1))
    if nonlinear:
        head = [nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                nn.Flatten(), nn.Linear(8, 5)]
    else:
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)]
    net = nn.Sequential()
    net.add_module("features", features)
    net.add_module("head", nn.Sequential(*head))
    return net.double().eval()


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("nonlinear", [False, True])
def test_lift_cam_coefficients_are_captums_deeplift_of_the_tail_summed_per_map(nonlinear):
    net, x, targets = relu_net(nonlinear), images(), torch.tensor([0, 3, 4])
    ours = methods.get("lift-cam")(net, "features").weights(x, targets)
    with torch.no_grad():
        acts = net.features(x)
    theirs = captum_attr.DeepLift(net.head).attribute(
        acts.clone().requires_grad_(True), baselines=torch.zeros_like(acts), target=targets
    )
    torch.testing.assert_close(ours, theirs.sum(dim=(2, 3)).detach(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("nonlinear", [False, True])
@pytest.mark.parametrize("steps", [2, 7])  # captum needs at least 2
def test_a_fmi_coefficients_are_captums_integrated_gradients_in_feature_space(nonlinear, steps):
    net, x, targets = relu_net(nonlinear, seed=2), images(seed=3), torch.tensor([1, 1, 2])
    reference = torch.full_like(x, 0.5)
    ours = methods.get("a-fmi")(net, "features", reference=reference, steps=steps).weights(x, targets)
    with torch.no_grad():
        acts, start = net.features(x), net.features(reference)
    theirs = captum_attr.IntegratedGradients(net.head).attribute(
        acts, baselines=start, target=targets, n_steps=steps, method="riemann_middle"
    )
    # captum builds the path positions in float32 (relative differences ~5e-8 here)
    torch.testing.assert_close(ours, theirs.sum(dim=(2, 3)), rtol=1e-6, atol=1e-8)


# --- pixel DeepLIFT: the package's engine on the whole network, captum's DeepLift as the oracle -------------


class ResidualReLUNet(nn.Module):
    """float64, nn.ReLU only: conv-BN-ReLU stem, a residual block (the skip added before the ReLU), average
    pooling and a linear layer. ReLU modules are used once each (captum keeps one input per module)."""

    def __init__(self, activation: type[nn.Module] = nn.ReLU, seed: int = 0, gain: float = 6.0):
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), activation())
        self.conv1 = nn.Conv2d(6, 6, 3, padding=1)
        self.act1 = activation()
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.act2 = activation()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        with torch.no_grad():  # non-trivial batch-norm statistics, large weights so that ReLU6 saturates
            self.stem[1].running_mean.uniform_(-0.5, 0.5)
            self.stem[1].running_var.uniform_(0.5, 2.0)
            for conv in (self.stem[0], self.conv1, self.conv2):
                conv.weight.mul_(gain)

    def forward(self, x):
        h = self.stem(x)
        h = self.act2(h + self.conv2(self.act1(self.conv1(h))))
        return self.fc(torch.flatten(self.pool(h), 1))


def relu_networks() -> dict[str, nn.Module]:
    return {"relu_net": relu_net(True), "linear_head": relu_net(False),
            "residual": ResidualReLUNet().double().eval()}


def captum_deeplift(net: nn.Module, x: torch.Tensor, reference: torch.Tensor, targets) -> torch.Tensor:
    return captum_attr.DeepLift(net).attribute(
        x.clone().requires_grad_(True), baselines=reference, target=targets
    ).detach()


@pytest.mark.parametrize("reference", ["zeros", "grey"])
@pytest.mark.parametrize("name", ["relu_net", "linear_head", "residual"])
def test_pixel_deeplift_is_captums_deeplift_on_relu_networks(name, reference):
    net = relu_networks()[name]
    x = images(n=3, seed=5)
    targets = torch.tensor([0, 3, 4])
    start = torch.zeros_like(x) if reference == "zeros" else torch.full_like(x, 0.5)
    ours = methods.get("deeplift")(net, reference=start).attributions(x, targets)
    theirs = captum_deeplift(net, x, start, targets)
    assert (ours - theirs).abs().max() <= 1e-6
    # and both are complete there
    with torch.no_grad():
        gap = (net(x) - net(start)).gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(ours.sum(dim=(1, 2, 3)), gap, rtol=0, atol=1e-10)


def test_pixel_deeplift_is_exact_on_relu6_networks_where_captum_is_not():
    net = ResidualReLUNet(nn.ReLU6, seed=1, gain=20.0).double().eval()
    x = images(n=3, seed=6)
    targets = torch.tensor([1, 2, 0])
    zeros = torch.zeros_like(x)
    with torch.no_grad():
        assert (net.stem[1](net.stem[0](x)) > 6).double().mean() > 0.1  # the ReLU6 saturate
        gap = (net(x) - net(zeros)).gather(1, targets[:, None]).squeeze(1)
    ours = methods.get("deeplift")(net).attributions(x, targets)
    torch.testing.assert_close(ours.sum(dim=(1, 2, 3)), gap, rtol=0, atol=1e-10)
    theirs = captum_deeplift(net, x, zeros, targets)
    assert (theirs.sum(dim=(1, 2, 3)) - gap).abs().max() > 1e-2  # captum: gradients through ReLU6
