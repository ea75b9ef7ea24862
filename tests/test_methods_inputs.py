"""What every method and metric does with inputs outside the convention: images outside [0, 1], float64 images
on a float32 model, the wrong number of channels, a model that returns a tuple or a dict, numpy targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LAYER, make_attention_net, make_linear_tail_net
from torch import nn

from camrepro import methods
from camrepro.metrics.faithfulness import gaussian_blur, insertion_deletion, masked_probabilities
from camrepro.tensors import IMAGE_RANGE_TOLERANCE

NAMES = sorted(methods.REGISTRY)
QUICK = {"opti-cam": {"iterations": 2}}
RANGE_FREE = {"a-fmi", "cam", "grad-cam", "grad-cam++", "xgrad-cam", "layer-cam", "ablation-cam", "lift-cam", "lrp-cam",
              "lime-cam", "integrated-gradients", "deeplift", "fake-cam", "attention"}


def network_for(name: str) -> nn.Module:
    return make_attention_net() if name == "attention" else make_linear_tail_net()


def build(name: str, net: nn.Module, **extra) -> methods.Explainer:
    cls = methods.get(name)
    kwargs = {**QUICK.get(name, {}), **extra}
    return cls(net, layer=LAYER, **kwargs) if cls.needs_layer else cls(net, **kwargs)


def images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------------- input range
@pytest.mark.parametrize("name", NAMES)
def test_images_outside_the_unit_range_are_refused_by_default(name):
    method = build(name, network_for(name))
    normalised = (images() - 0.45) / 0.225
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*camrepro\.models\.with_normalization"):
        method(normalised, [0, 1])
    # rounding overshoot is not a different convention
    method(images().clamp(0, 1) * (1 + IMAGE_RANGE_TOLERANCE / 2), [0, 1])


@pytest.mark.parametrize("name", NAMES)
def test_check_range_false_is_accepted_exactly_by_the_range_free_methods(name):
    net = network_for(name)
    assert methods.get(name).range_free == (name in RANGE_FREE)
    if name in RANGE_FREE:
        maps = build(name, net, check_range=False)(images() * 4 - 2, [0, 1])
        assert maps.shape == (2, 8, 8) and torch.isfinite(maps).all()
    else:
        with pytest.raises(ValueError, match="check_range=False is refused"):
            build(name, net, check_range=False)


def test_the_range_error_of_a_range_free_method_says_how_to_turn_it_off():
    method = methods.get("grad-cam")(make_linear_tail_net(), layer=LAYER)
    with pytest.raises(ValueError, match="check_range=False to GradCAM"):
        method(images() + 2)
    with pytest.raises(TypeError, match="check_range must be a bool"):
        methods.get("grad-cam")(make_linear_tail_net(), layer=LAYER, check_range=0)


def test_pixel_space_references_need_the_unit_range():
    net = make_linear_tail_net()
    with pytest.raises(ValueError, match="image reference is built in \\[0, 1\\]"):
        methods.get("lift-cam")(net, layer=LAYER, reference="blur", check_range=False)
    with pytest.raises(ValueError, match=r"check_range=False works with the references \('zeros', 'mean'\)"):
        methods.get("integrated-gradients")(net, reference="noise", check_range=False)
    attributions = methods.get("deeplift")(net, reference="mean", check_range=False).attributions(images() - 3, 0)
    assert torch.isfinite(attributions).all()


def test_metrics_keep_requiring_the_unit_range():
    net = make_linear_tail_net().eval()
    maps = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*with_normalization"):
        masked_probabilities(net, images() * 3, maps, [0, 1])
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        insertion_deletion(net, images() - 1, maps, [0, 1], mode="deletion", steps=4)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        gaussian_blur(images() * 2)


# --------------------------------------------------------------------------------- dtype and channels
@pytest.mark.parametrize("name", NAMES)
def test_float64_images_on_a_float32_model_are_a_clear_error(name):
    method = build(name, network_for(name))
    with pytest.raises(TypeError, match=r"images are torch\.float64 but .* parameters are torch\.float32"):
        method(images().double(), [0, 1])


@pytest.mark.parametrize("name", NAMES)
def test_a_four_channel_image_on_a_three_channel_model_is_a_clear_error(name):
    method = build(name, network_for(name))
    with pytest.raises(ValueError, match="images have 4 channels but .* takes 3"):
        method(torch.rand(2, 4, 8, 8), [0, 1])


def test_a_network_that_declares_its_channels_is_taken_at_its_word():
    from camrepro.models.resnet_cifar import CifarResNet, ResNetConfig

    net = CifarResNet(ResNetConfig(in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)).eval()
    cam = methods.get("grad-cam")(net, layer=net.cam_layer)
    assert cam(torch.rand(2, 1, 16, 16), [0, 1]).shape == (2, 16, 16)  # grey images: repeated by the network
    with pytest.raises(ValueError, match=r"4 channels but CifarResNet takes 1 or 3"):
        cam(torch.rand(2, 4, 16, 16), [0, 1])


def test_metrics_check_dtype_and_channels_against_the_model():
    net = make_linear_tail_net().eval()
    maps = torch.rand(2, 8, 8)
    with pytest.raises(TypeError, match="float64"):
        masked_probabilities(net, images().double(), maps, [0, 1])
    with pytest.raises(ValueError, match="4 channels"):
        insertion_deletion(net, torch.rand(2, 4, 8, 8), maps, [0, 1], mode="deletion", steps=4)


# ------------------------------------------------------------------------------ models returning more
class ReturnsTuple(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x.mean()


class ReturnsDict(ReturnsTuple):
    def forward(self, x):
        return {"logits": self.net(x), "aux": x.mean()}


@pytest.mark.parametrize("wrapper", [ReturnsTuple, ReturnsDict])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "attention"])
def test_a_model_returning_a_tuple_or_dict_is_a_clear_error(name, wrapper):
    net = wrapper(make_linear_tail_net())
    kind = "tuple" if wrapper is ReturnsTuple else "dict"
    with pytest.raises(TypeError, match=f"returns a {kind}.*not a logits tensor.*wrap it"):
        cls = methods.get(name)
        method = cls(net, layer="net." + LAYER, **QUICK.get(name, {})) if cls.needs_layer else cls(net)
        method(images(), None)


def test_metrics_name_a_tuple_output_too():
    with pytest.raises(TypeError, match="returns a tuple of 2"):
        masked_probabilities(ReturnsTuple(make_linear_tail_net()), images(), torch.rand(2, 8, 8), [0, 1])


# ------------------------------------------------------------------------------------ numpy targets
@pytest.mark.parametrize("name", NAMES)
def test_numpy_targets_are_accepted_like_other_integer_forms(name):
    method = build(name, network_for(name))
    x = images()
    expected = method(x, [1, 2])
    torch.testing.assert_close(method(x, np.array([1, 2])), expected)
    torch.testing.assert_close(method(x, np.array([1, 2], dtype=np.int32)), expected)
    torch.testing.assert_close(method(x, [np.int64(1), np.int64(2)]), expected)
    torch.testing.assert_close(method(x, np.int64(1)), method(x, 1))
    with pytest.raises(TypeError, match="integer tensor"):
        method(x, np.array([1.0, 2.0]))
