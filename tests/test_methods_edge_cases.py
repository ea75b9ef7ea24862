"""Two states a method must not get wrong silently: a map that is zero everywhere, and a model that is in train
mode when a tail-based method is built."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import LAYER, block_image, make_linear_tail_net
from torch import nn

from camrepro import methods


def green_and_red_images() -> torch.Tensor:
    """Image 0 is green only, image 1 red only (block values 0.5 on 4×4 blocks of an 8×8 image)."""
    blocks = torch.zeros(2, 3, 4, 4)
    blocks[0, 1] = 0.5
    blocks[1, 0] = 0.5
    return block_image(blocks)


# ------------------------------------------------------------------------------------------ all-zero maps
@pytest.mark.parametrize("name", ["cam", "grad-cam", "xgrad-cam", "lift-cam", "lrp-cam"])
def test_a_map_negative_everywhere_is_flagged_all_zero(name):
    # class 0 has weights (1, −2, 0.5): the green image's CAM is −2 · A_green < 0 everywhere, the red one's > 0
    explanation = methods.get(name)(make_linear_tail_net(), layer=LAYER).explain(green_and_red_images(), 0)
    assert explanation.all_zero.dtype == torch.bool
    assert explanation.all_zero.tolist() == [True, False]
    assert (explanation.saliency[0] == 0).all()


@pytest.mark.parametrize("name", sorted(methods.REGISTRY))
def test_every_explanation_has_the_flag(name):
    from conftest import make_attention_net

    cls = methods.get(name)
    net = make_attention_net() if name == "attention" else make_linear_tail_net()
    kwargs = {"iterations": 2} if name == "opti-cam" else {}
    method = cls(net, layer=LAYER, **kwargs) if cls.needs_layer else cls(net, **kwargs)
    explanation = method.explain(torch.rand(3, 3, 8, 8), [0, 1, 2])
    assert explanation.all_zero.shape == (3,)
    torch.testing.assert_close(explanation.all_zero, explanation.saliency.flatten(1).amax(1) <= 0)


# ------------------------------------------------------------------------------- train mode at build time
class TrainBranchNet(nn.Module):
    """After the layer, a branch taken only in train mode (as auxiliary heads and noise layers do): the tail
    of the evaluation branch is GAP + linear, the training branch adds 10 to every activation."""

    def __init__(self) -> None:
        super().__init__()
        base = make_linear_tail_net()
        self.features = base.features
        self.classifier = base.classifier[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = self.features(x)
        if self.training:
            acts = acts + 10.0
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(acts, 1), 1))


@pytest.mark.parametrize("name", ["lift-cam", "lrp-cam", "lime-cam", "ablation-cam", "cam", "a-fmi"])
def test_the_mode_at_construction_does_not_matter(name):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    in_eval = methods.get(name)(TrainBranchNet().eval(), layer=LAYER).weights(x, [0, 1])
    net = TrainBranchNet().train()
    method = methods.get(name)(net, layer=LAYER)
    assert net.training and all(m.training for m in net.modules())  # the flags are restored after tracing
    torch.testing.assert_close(method.weights(x, [0, 1]), in_eval)
    assert net.training


def test_deeplift_rule_check_traces_the_evaluation_branch():
    class TrainOnlySoftmax(TrainBranchNet):
        def forward(self, x):
            out = self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))
            return torch.softmax(out, 1) if self.training else out

    net = TrainOnlySoftmax().train()
    methods.get("deeplift")(net)  # the softmax of the training branch is not what the method explains
    assert net.training
