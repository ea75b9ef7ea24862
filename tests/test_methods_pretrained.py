"""The baseline methods on the pretrained networks: identities that must hold exactly on real weights.

MobileNetV2's ``features.18`` is followed by global average pooling and one linear layer, so CAM's weights are
the classifier rows, Grad-CAM's and XGrad-CAM's are those rows / (h·w), and Ablation-CAM's are
W_ck · mean(A_k) / y_c. DeepLIFT's completeness must hold through every ReLU6 of both networks. Images are
112×112 (4×4 maps at the last layer) to keep the file fast; nothing here depends on the size.
"""

from __future__ import annotations

import pytest
import torch

from camrepro import methods, models

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error")]


@pytest.fixture(scope="module")
def mobilenet():
    net, _ = models.load("mobilenet_v2")
    return net


def photo_like(seed: int, size: int = 112) -> torch.Tensor:
    """A smooth random image (a few blobs of colour), so that the network sees structure, not noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 7, 7, generator=generator)
    return torch.nn.functional.interpolate(
        coarse, size=(size, size), mode="bicubic", align_corners=False
    ).clamp(0, 1)


def test_linear_tail_identities_on_mobilenet_v2(mobilenet):
    x = torch.cat([photo_like(0), photo_like(1)])
    layer = models.MODELS["mobilenet_v2"].default_layer
    acts = []
    handle = mobilenet.get_submodule(layer).register_forward_hook(
        lambda m, i, o: acts.append(o.detach().clone())
    )
    with torch.no_grad():
        logits = mobilenet(x)
    handle.remove()
    a = acts[0]
    hw = a.shape[2] * a.shape[3]
    targets = logits.argmax(dim=1)
    w = mobilenet.classifier[1].weight[targets]
    cam = methods.get("cam")(mobilenet, layer=layer).weights(x, targets)
    torch.testing.assert_close(cam, w)
    torch.testing.assert_close(methods.get("grad-cam")(mobilenet, layer=layer).weights(x, targets), w / hw)
    xgrad = methods.get("xgrad-cam")(mobilenet, layer=layer).weights(x, targets)
    active = a.sum(dim=(2, 3)) != 0
    torch.testing.assert_close(xgrad[active], (w / hw)[active], rtol=1e-4, atol=1e-7)
    assert (xgrad[~active] == 0).all()
    ablation = methods.get("ablation-cam")(mobilenet, layer=layer).weights(x, targets)
    y = logits.gather(1, targets[:, None])
    torch.testing.assert_close(ablation, w * a.mean(dim=(2, 3)) / y, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_deeplift_completeness_through_relu6_on_the_pretrained_networks(name, request):
    net = request.getfixturevalue("mobilenet") if name == "mobilenet_v2" else models.load(name)[0]
    x = photo_like(2)
    with torch.no_grad():
        target = int(net(x).argmax())
        gap = net(x)[0, target] - net(torch.zeros_like(x))[0, target]
    contributions = methods.get("deeplift")(net).attributions(x, target)
    torch.testing.assert_close(contributions.sum(), gap, rtol=1e-4, atol=1e-4)
    # the independent op-by-op engine of deeplift_rules, run from the pixels, gives the same contributions
    from camrepro.methods.deeplift_rules import deeplift as op_by_op

    theirs = op_by_op(net, x, torch.tensor([target]), torch.zeros_like(x)).attributions
    torch.testing.assert_close(contributions, theirs, atol=1e-6, rtol=1e-4)


def test_deeplift_of_a_batch_is_the_deeplift_of_each_image_on_mobilenet_v2(mobilenet):
    x = torch.cat([photo_like(3), photo_like(4)])
    targets = torch.tensor([3, 500])
    method = methods.get("deeplift")(mobilenet, reference="blur")
    batch = method.attributions(x, targets)
    loop = torch.cat([method.attributions(x[i:i + 1], targets[i:i + 1]) for i in range(2)])
    torch.testing.assert_close(batch, loop, atol=1e-6, rtol=1e-4)
    assert method(x, targets).shape == (2, 112, 112)
