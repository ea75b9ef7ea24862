"""Pretrained model loaders (src/camrepro/models)."""

from __future__ import annotations

import pytest
import torch

from camrepro import models
from camrepro.models.efficientnet_lite import build_efficientnet_lite0
from camrepro.models.masking import masked_forward
from camrepro.models.normalize import Normalize, find_normalize


def test_mobilenet_weights_match_torchvision_checksum():
    assert models.verify_weights("mobilenet_v2").startswith("b0353104")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_load_returns_eval_model_with_pixel_space_input(name):
    net, preprocess = models.load(name)
    assert not net.training
    assert isinstance(net.normalize, Normalize)
    assert all(not p.requires_grad for p in net.parameters())
    assert name and models.MODELS[name].default_layer in dict(net.named_modules())
    from PIL import Image
    img = Image.new("RGB", (300, 200), (120, 80, 40))
    x = preprocess(img)
    assert x.shape == (3, 224, 224) and 0 <= float(x.min()) and float(x.max()) <= 1
    with torch.no_grad():
        out = net(x.unsqueeze(0))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.slow
def test_pretrained_mobilenet_recognises_a_cat_photo():
    """A known photo (scikit-image's 'chelsea', a tabby cat) is classified as a cat: the weights are real."""
    import skimage.data
    from PIL import Image
    net, preprocess = models.load("mobilenet_v2")
    x = preprocess(Image.fromarray(skimage.data.chelsea())).unsqueeze(0)
    with torch.no_grad():
        top = net(x).softmax(1).topk(3).indices[0].tolist()
    names = [models.imagenet_categories()[i] for i in top]
    assert any("cat" in n for n in names), names


def test_efficientnet_rebuild_is_arithmetically_identical():
    new, original = build_efficientnet_lite0(str(models.weights_file("efficientnet_lite0")))
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(new(x), original(x), rtol=0, atol=1e-5)


def test_imagenet_categories():
    cats = models.imagenet_categories()
    assert len(cats) == 1000 and cats[0] == "tench" and cats[281] == "tabby"


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'resnet18'.*mobilenet_v2"):
        models.load("resnet18")


def test_missing_paper_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMREPRO_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth"):
        models.load("resnet50")


def test_paper_weights_are_loaded_from_the_user_folder(tmp_path, monkeypatch):
    import torchvision
    net = torchvision.models.resnet50()
    torch.save(net.state_dict(), tmp_path / "resnet50-0676ba61.pth")
    monkeypatch.setenv("CAMREPRO_WEIGHTS", str(tmp_path))
    monkeypatch.setitem(models.MODELS, "resnet50", models.MODELS["resnet50"].__class__(
        **{**models.MODELS["resnet50"].__dict__, "sha256_prefix": None}))
    loaded, _ = models.load("resnet50")
    torch.testing.assert_close(loaded.fc.weight, net.fc.weight)
    assert "layer4" in dict(loaded.named_modules())


def test_with_normalization_keeps_layer_names_and_normalises():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Flatten())
    wrapped = models.with_normalization(net, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert "0" in dict(wrapped.named_modules()) and find_normalize(wrapped) is wrapped.normalize
    assert wrapped.get_submodule("0") is net[0]
    x = torch.rand(1, 3, 2, 2)
    conv = wrapped.get_submodule("0")
    torch.testing.assert_close(wrapped(x), torch.flatten(conv((x - 0.5) / 0.5), 1))
    with pytest.raises(ValueError, match="already has a Normalize"):
        models.with_normalization(wrapped)


def test_masked_forward_pixel_vs_normalized_space():
    """Pixel space: masked pixels are black (0); normalised space: masked pixels become the mean."""
    seen = []
    net = models.with_normalization(torch.nn.Flatten(), mean=(0.5,), std=(0.25,))
    net.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.full((1, 1, 2, 2), 0.75)
    mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    pix = masked_forward(net, x, mask, "pixel")
    torch.testing.assert_close(pix, torch.tensor([[1.0, -2.0, -2.0, 1.0]]))   # (0-0.5)/0.25 = -2
    nrm = masked_forward(net, x, mask, "normalized")
    torch.testing.assert_close(nrm, torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert not net.normalize._forward_hooks, "the normalised-space hook is removed"
    with pytest.raises(ValueError, match="unknown masking space"):
        masked_forward(net, x, mask, "lab")
    with pytest.raises(ValueError, match="do not match"):
        masked_forward(net, x, mask[:, :1], "pixel")
