"""The trainable networks of the LFI-CAM chapter: CIFAR-style ResNet, LFI-CAM, ABN (src/camrepro/models)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import camrepro  # noqa: F401
from camrepro import methods
from camrepro.methods.base import normalize_maps, upsample
from camrepro.models.abn import ABNNet
from camrepro.models.attention_output import AttentionOutput, LogitsOnly, logits_of
from camrepro.models.lficam import FeatureImportanceNetwork, LFICAMNet, importance_attention, minmax_per_map
from camrepro.models.masking import masked_forward
from camrepro.models.normalize import Normalize, find_normalize
from camrepro.models.resnet_cifar import CifarResNet, ResNetConfig
from camrepro.training import build_network, load_network, save_network

SMALL = ResNetConfig(num_classes=5, in_channels=1, widths=(4, 8, 8), blocks=(1, 1, 1))
NETWORKS = (CifarResNet, ABNNet, LFICAMNet)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see the fixture in conftest.py


def _net(cls, config=SMALL, seed=0):
    torch.manual_seed(seed)
    return cls(config)


def _images(n=3, size=16, channels=1, seed=1):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------- shapes, inputs

@pytest.mark.parametrize("cls", NETWORKS)
def test_normalize_is_the_first_module_and_outputs_have_the_documented_shapes(cls):
    net = _net(cls).eval()
    assert isinstance(net.normalize, Normalize) and find_normalize(net) is net.normalize
    with torch.no_grad():
        out = net(_images())
    logits = logits_of(out)
    assert logits.shape == (3, 5)
    if cls is CifarResNet:
        assert isinstance(out, torch.Tensor)
    else:
        # LFI-CAM weights the last stage (16 / 4 = 4 px); ABN the feature extractor's output (8 px)
        side = 4 if cls is LFICAMNet else 8
        assert out.attention.shape == (3, side, side)
        assert float(out.attention.min()) >= 0.0 and float(out.attention.max()) <= 1.0


def test_lficam_attention_is_minmax_normalised_and_fin_weights_sum_to_one():
    out = _net(LFICAMNet).eval()(_images(4))
    flat = out.attention.flatten(1)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(4))
    torch.testing.assert_close(flat.max(1).values, torch.ones(4))
    assert out.weights.shape == (4, 8)
    torch.testing.assert_close(out.weights.sum(1), torch.ones(4))


@pytest.mark.parametrize("cls", NETWORKS)
def test_grey_images_feed_an_rgb_network_and_wrong_channels_are_rejected(cls):
    config = ResNetConfig(num_classes=5, in_channels=3, widths=(4, 8, 8), blocks=(1, 1, 1),
                          mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    net = _net(cls, config).eval()
    grey = _images(2)
    with torch.no_grad():
        torch.testing.assert_close(logits_of(net(grey)), logits_of(net(grey.expand(-1, 3, -1, -1))))
    with pytest.raises(ValueError, match="2 channels"):
        net(torch.rand(2, 2, 16, 16))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        net(torch.rand(1, 16, 16))


@pytest.mark.parametrize("cls", (ABNNet, LFICAMNet))
def test_a_batch_gives_the_same_outputs_as_single_images(cls):
    net = _net(cls).eval()
    x = _images(3)
    with torch.no_grad():
        batch = net(x)
        single = [net(x[i:i + 1]) for i in range(3)]
    torch.testing.assert_close(batch.attention, torch.cat([s.attention for s in single]),
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(batch.logits, torch.cat([s.logits for s in single]), atol=1e-5, rtol=1e-5)


def test_config_validation_and_round_trip():
    assert ResNetConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError, match="same length"):
        ResNetConfig(widths=(8, 16), blocks=(1,))
    with pytest.raises(ValueError, match="in_channels"):
        ResNetConfig(in_channels=2, mean=(0.5, 0.5), std=(0.2, 0.2))
    with pytest.raises(ValueError, match="one value per input channel"):
        ResNetConfig(in_channels=3)
    with pytest.raises(ValueError, match="block must be"):
        ResNetConfig(block="dense")
    with pytest.raises(ValueError, match="unknown ResNetConfig fields"):
        ResNetConfig.from_dict({"depth": 50})
    with pytest.raises(ValueError, match="at least two stages"):
        ABNNet(ResNetConfig(widths=(8,), blocks=(1,)))


def test_resnet50_like_has_torchvision_resnet50_parameter_count():
    import torchvision

    with torch.device("meta"):     # shapes only: no memory, no initialisation cost
        reference = sum(p.numel() for p in torchvision.models.resnet50(num_classes=10).parameters())
        for imagenet_stem in (False, True):
            ours = CifarResNet(ResNetConfig.resnet50_like(num_classes=10, imagenet_stem=imagenet_stem))
            count = sum(p.numel() for p in ours.parameters())
            # the CIFAR stem is a 3×3 instead of a 7×7 convolution: 3·64·(49 − 9) = 7680 parameters fewer
            assert count == reference - (0 if imagenet_stem else 7680)
            assert ours.config.out_channels == 2048
    assert reference == 23_528_522


# -------------------------------------------------------------------------------------- FIN: a known answer

def _identity_fin(channels: int) -> FeatureImportanceNetwork:
    """A one-block FIN whose convolution and batch norm are the identity (eval mode, eps 0)."""
    fin = FeatureImportanceNetwork(channels, blocks=1).eval()
    with torch.no_grad():
        fin.convs[0].weight.zero_()
        for k in range(channels):
            fin.convs[0].weight[k, k, 1, 1] = 1.0
    norm = fin.norms[0]
    norm.eps = 0.0
    norm.running_mean.zero_()
    norm.running_var.fill_(1.0)
    return fin


def test_fin_weighting_and_attention_on_a_hand_computed_case():
    a1 = [[0.0, 1.0], [2.0, 3.0]]       # min-max → [[0, 1/3], [2/3, 1]]
    a2 = [[4.0, 4.0], [4.0, 0.0]]       # min-max → [[1, 1], [1, 0]]
    features = torch.tensor([[a1, a2]])
    grey = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    # F1 = [[0, 0], [2/3, 1]] → mean 5/12;  F2 = [[1, 0], [1, 0]] → mean 1/2;  w = softmax(5/12, 1/2)
    w2 = math.exp(1 / 12) / (1 + math.exp(1 / 12))
    w1 = 1 - w2
    weights = _identity_fin(2)(features, grey)
    torch.testing.assert_close(weights, torch.tensor([[w1, w2]]), atol=1e-7, rtol=1e-6)
    assert abs(w1 - 0.479179) < 1e-6
    # Σ w_k A_k = [[4 w2, w1 + 4 w2], [2 w1 + 4 w2, 3 w1]]: min 3 w1, max 2 w1 + 4 w2
    lo, hi = 3 * w1, 2 * w1 + 4 * w2
    expected = torch.tensor([[[(4 * w2 - lo) / (hi - lo), (w1 + 4 * w2 - lo) / (hi - lo)], [1.0, 0.0]]])
    torch.testing.assert_close(importance_attention(features, weights), expected, atol=1e-6, rtol=1e-6)
    assert abs(float(expected[0, 0, 0]) - 0.402558) < 1e-5


def test_fin_resizes_the_grey_image_and_relu_cuts_negative_sums():
    features = torch.tensor([[[[0.0, 2.0], [4.0, 2.0]], [[1.0, 1.0], [3.0, 1.0]]]])
    grey = torch.full((1, 1, 8, 8), 0.5)         # a constant image stays constant when resized
    # F1 = 0.5 · [[0, .5], [1, .5]] → mean 0.25;  F2 = 0.5 · [[0, 0], [1, 0]] → mean 0.125
    weights = _identity_fin(2)(features, grey)
    e = math.exp(0.125)
    torch.testing.assert_close(weights, torch.tensor([[e / (1 + e), 1 / (1 + e)]]), atol=1e-7, rtol=1e-6)
    # a map that is negative everywhere is cut to 0 by the ReLU and stays 0 (no NaN)
    negative = -torch.ones(1, 2, 2, 2)
    torch.testing.assert_close(importance_attention(negative, weights), torch.zeros(1, 2, 2))
    torch.testing.assert_close(minmax_per_map(torch.tensor([[[1.0, 3.0], [2.0, 5.0]]])),
                               torch.tensor([[[0.0, 0.5], [0.25, 1.0]]]))


def test_lficam_forward_is_backbone_plus_fin_as_documented():
    net = _net(LFICAMNet).eval()
    x = _images(2)
    with torch.no_grad():
        out = net(x)
        backbone = net.backbone
        torch.testing.assert_close(backbone.pixels(backbone.prepare(x)), x, atol=1e-6, rtol=0)
        features = backbone.features(x)
        weights = net.fin(features, x)
        attention = importance_attention(features, weights)
        logits = backbone.fc(((1 + attention.unsqueeze(1)) * features).mean(dim=(2, 3)))
    torch.testing.assert_close(out.weights, weights)
    torch.testing.assert_close(out.attention, attention)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)


def test_fin_rejects_mismatched_inputs():
    fin = FeatureImportanceNetwork(3)
    with pytest.raises(ValueError, match="3-channel"):
        fin(torch.rand(1, 2, 4, 4), torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="grey must be"):
        fin(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="blocks"):
        FeatureImportanceNetwork(3, blocks=0)


# ------------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("cls", NETWORKS)
def test_gradients_reach_every_parameter(cls):
    net = _net(cls).train()
    x, y = _images(4), torch.tensor([0, 1, 2, 3])
    net.training_loss(net(x), y).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_abn_loss_is_the_sum_of_both_branch_losses():
    net = _net(ABNNet).eval()
    x, y = _images(2), torch.tensor([1, 4])
    out = net(x)
    expected = F.cross_entropy(out.aux_logits, y) + F.cross_entropy(out.logits, y)
    torch.testing.assert_close(net.training_loss(out, y), expected)
    assert out.weights is None and out.aux_logits.shape == (2, 5)


# ------------------------------------------------------------------------------------------ explanation API

@pytest.mark.parametrize("cls", (ABNNet, LFICAMNet))
def test_attention_method_returns_the_networks_own_map(cls):
    net = _net(cls).train()
    x = _images(2)
    explainer = methods.get("attention")(net)
    explanation = explainer.explain(x)
    assert net.training and all(p.requires_grad for p in net.parameters())   # flags restored
    net.eval()
    with torch.no_grad():
        out = net(x)
    torch.testing.assert_close(explanation.saliency, out.attention)
    torch.testing.assert_close(explanation.targets, out.logits.argmax(1))
    maps = explainer(x, targets=[0, 1])
    torch.testing.assert_close(maps, normalize_maps(upsample(out.attention, (16, 16))))
    assert maps.shape == (2, 16, 16) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    if cls is LFICAMNet:
        torch.testing.assert_close(explainer.explain(x).weights, out.weights)


def test_attention_method_rejects_a_plain_network_and_bad_targets():
    with pytest.raises(TypeError, match="AttentionOutput"):
        methods.get("attention")(_net(CifarResNet))(_images(1))
    with pytest.raises(ValueError, match="out of range"):
        methods.get("attention")(_net(LFICAMNet))(_images(1), targets=7)


def test_logits_only_view_masks_and_explains_like_a_classifier():
    net = _net(LFICAMNet).eval()
    view = LogitsOnly(net)
    x = _images(2)
    masks = torch.zeros(2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(view(x), net(x).logits)
        # a mask of zeros in normalised space gives the mean image: the same logits as that image
        mean_image = torch.full_like(x, float(net.normalize.mean))
        torch.testing.assert_close(masked_forward(view, x, masks, "normalized"), view(mean_image),
                                   atol=1e-5, rtol=1e-5)
    plain = _net(CifarResNet)
    cam = methods.get("grad-cam")(plain, layer=plain.cam_layer)(x)
    assert cam.shape == (2, 16, 16)
    assert isinstance(net(x), AttentionOutput)


# ---------------------------------------------------------------------------------------------- save / load

@pytest.mark.parametrize("cls", NETWORKS)
def test_save_load_round_trip(cls, tmp_path):
    net = _net(cls, seed=3).train()
    net(_images(4))          # move the batch-norm running statistics away from their initial values
    net.eval()
    path = save_network(net, tmp_path / "net.pt")
    loaded = load_network(path)
    assert type(loaded) is cls and loaded.spec() == net.spec() and not loaded.training
    x = _images(2, seed=5)
    with torch.no_grad():
        a, b = net(x), loaded(x)
    for left, right in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        if left is not None:
            torch.testing.assert_close(left, right, atol=0, rtol=0)
    assert build_network(net.spec()).spec() == net.spec()


def test_load_network_rejects_corrupt_and_foreign_files(tmp_path):
    path = save_network(_net(LFICAMNet), tmp_path / "net.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a network file"):
        load_network(path)
    with pytest.raises(ValueError, match="not a network file"):
        load_network(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown network kind"):
        build_network({"kind": "vgg", "config": {}})
