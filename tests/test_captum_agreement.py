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
