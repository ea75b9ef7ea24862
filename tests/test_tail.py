"""Generic tail extraction (src/camrepro/methods/tail.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camrepro import models
from camrepro.methods.tail import TailError, check_tail, extract_tail


class Skip(nn.Module):
    """x → a = conv1(x) → out = fc(pool(relu(conv2(a) + x))): a skip connection around conv1 and conv2."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 1)
        self.conv2 = nn.Conv2d(2, 2, 1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        a = self.conv1(x)
        y = torch.relu(self.conv2(a) + x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: not traceable
            return self.conv(x).mean((2, 3))
        return x.mean((2, 3))


def _activations(model, layer, x):
    out = []
    h = model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.append(o))
    with torch.no_grad():
        logits = model(x)
    h.remove()
    return out[0], logits


def test_tail_after_a_block_reproduces_the_logits():
    torch.manual_seed(0)
    model = Skip().eval()
    x = torch.randn(3, 2, 4, 4)
    acts, logits = _activations(model, "conv2", x)
    with pytest.raises(TailError, match="skip connection"):
        extract_tail(model, "conv2")
    with pytest.raises(TailError, match="skip connection"):
        extract_tail(model, "conv1")
    tail = extract_tail(model, "fc")
    torch.testing.assert_close(tail(logits), logits)  # identity: nothing after fc


@pytest.mark.parametrize("name,layer", [("mobilenet_v2", "features.18"), ("mobilenet_v2", "features.17"),
                                        ("mobilenet_v2", "features.14"), ("efficientnet_lite0", "features.17"),
                                        ("efficientnet_lite0", "features.16")])
def test_tail_of_pretrained_networks_is_exact(name, layer):
    net = models._build(name, True).eval()
    x = torch.rand(2, 3, 224, 224)
    acts, logits = _activations(net, layer, x)
    tail = extract_tail(net, layer)
    with torch.no_grad():
        torch.testing.assert_close(tail(acts), logits, rtol=0, atol=1e-5)
    check_tail(tail, acts, logits, "the test")
    # The tail shares the network's parameters rather than copying them.
    assert any(p is q for p in tail.parameters() for q in net.parameters())


def test_untraceable_model_is_a_clear_error():
    with pytest.raises(TailError, match="could not trace.*pass tail="):
        extract_tail(Branchy(), "conv")


def test_layer_called_twice_has_no_tail():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.conv(self.conv(x)).mean((2, 3))
    with pytest.raises(TailError, match="called 2 times"):
        extract_tail(Twice(), "conv")


def test_check_tail_rejects_a_wrong_tail():
    acts = torch.rand(2, 4, 3, 3)
    logits = acts.mean((2, 3))
    check_tail(lambda a: a.mean((2, 3)), acts, logits, "ok")
    with pytest.raises(TailError, match="does not reproduce"):
        check_tail(lambda a: a.sum((2, 3)), acts, logits, "a user tail")
