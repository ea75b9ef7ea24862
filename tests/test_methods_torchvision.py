"""Every registered method on randomly initialised torchvision networks: ResNet-18 (``layer3``, whose tail holds
a residual stage, and ``layer4``) and VGG16 (``features.29``, whose tail holds a max-pool and the three-layer
classifier), with completeness checked for LIFT-CAM and A-FMI there. Small images keep the file fast; no
weights are loaded."""

from __future__ import annotations

import pytest
import torch

import camrepro  # noqa: F401  (torchvision compat before torchvision is imported)
from camrepro import methods, models

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error")]

NAMES = [n for n in sorted(methods.REGISTRY) if n != "attention"]  # attention explains attention networks
QUICK = {"opti-cam": {"iterations": 2}, "integrated-gradients": {"steps": 4}, "a-fmi": {"steps": 8}}
CASES = [("resnet18", "layer3", 64), ("resnet18", "layer4", 64), ("vgg16", "features.29", 32)]


@pytest.fixture(scope="module")
def networks():
    import torchvision

    built = {}
    for name in ("resnet18", "vgg16"):
        torch.manual_seed(0)
        net = models.with_normalization(getattr(torchvision.models, name)(num_classes=10)).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        built[name] = net
    return built


def photo_like(size: int, n: int = 2) -> torch.Tensor:
    coarse = torch.rand(n, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def build(name: str, net: torch.nn.Module, layer: str) -> methods.Explainer:
    cls = methods.get(name)
    kwargs = QUICK.get(name, {})
    return cls(net, layer=layer, **kwargs) if cls.needs_layer else cls(net, **kwargs)


@pytest.mark.parametrize("arch, layer, size", CASES)
@pytest.mark.parametrize("name", NAMES)
def test_every_method_runs_on_torchvision_networks(networks, name, arch, layer, size):
    net = networks[arch]
    if name == "cam" and layer != "layer4":
        with pytest.raises(ValueError, match="CAM needs"):  # only the last stage is followed by GAP + fc
            build(name, net, layer)
        return
    x = photo_like(size)
    maps = build(name, net, layer)(x, [1, 7])
    assert maps.shape == (2, size, size)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("arch, layer, size", CASES)
def test_lift_cam_is_complete_on_torchvision_tails(networks, arch, layer, size):
    net = networks[arch]
    x = photo_like(size)
    targets = torch.tensor([1, 7])
    lift = methods.get("lift-cam")(net, layer=layer)
    result = lift.contributions(x, targets)
    with torch.no_grad():
        from camrepro.methods.tail import extract_tail

        tail = extract_tail(net, layer)
        expected = (tail(result.activations) - tail(torch.zeros_like(result.activations)))
        expected = expected.gather(1, targets[:, None]).squeeze(1)
    scale = float(result.contributions.abs().flatten(1).sum(1).max())
    torch.testing.assert_close(result.coefficients.sum(1), expected, atol=1e-4 * scale, rtol=0)


@pytest.mark.parametrize("arch, layer, size", CASES)
def test_a_fmi_is_complete_on_torchvision_tails(networks, arch, layer, size):
    net = networks[arch]
    result = methods.get("a-fmi")(net, layer=layer, steps=64, reference="blur").attribute(photo_like(size), [1, 7])
    difference = (result.score - result.reference_score).abs()
    # the midpoint rule's error shrinks as 1/steps across ReLU kinks; 64 steps keep it within 5 %
    assert (result.completeness_gap.abs() <= 0.05 * difference + 1e-5).all()


def test_deeplift_is_complete_on_resnet18_and_a_batch_is_its_images(networks):
    # max-pooling, batch-norm, residual additions and in-place ReLUs, from the pixels
    net = networks["resnet18"]
    x = photo_like(64, n=3)
    targets = torch.tensor([1, 7, 3])
    method = methods.get("deeplift")(net)
    contributions = method.attributions(x, targets)
    with torch.no_grad():
        gap = (net(x) - net(torch.zeros_like(x))).gather(1, targets[:, None]).squeeze(1)
    scale = float(contributions.abs().flatten(1).sum(1).max())
    torch.testing.assert_close(contributions.sum(dim=(1, 2, 3)), gap, atol=1e-4 * scale, rtol=0)
    loop = torch.cat([method.attributions(x[i:i + 1], targets[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(contributions, loop, atol=1e-6 * scale, rtol=1e-4)
