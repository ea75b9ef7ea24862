"""LIFT-CAM, LRP-CAM, LIME-CAM and the DeepLIFT rules they rest on.

Known answers are computed by hand in the comments; completeness (Σ_k φ_k = F(A) − F(A₀)) is checked on tails
with every kind of operation that has a rule, because it fails as soon as one non-linearity falls back to the
plain gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import LAYER, LINEAR_W, make_linear_tail_net, make_nonlinear_tail_net
from torch import nn

from camrepro import methods
from camrepro.methods.deeplift_rules import (
    UnsupportedTailOperation, deeplift, lrp, plan_tail, secant_slopes,
)
from camrepro.methods.lime_cam import kernel_shap, kernel_size_weights, sample_coalitions
from camrepro.methods.tail import TailError

pytestmark = pytest.mark.filterwarnings("error")


class HandNet(nn.Module):
    """image [B, 3, 1, 1] → features: A = (3·x₀, x₁) → head: z = A₀ + 2·A₁ − 1 → ReLU → fc: y = (2h + 0.5,
    −h).

    For x = (1, 1, 0): A = (3, 1), z = 4, h = 4, y₀ = 8.5; with A = 0: z = −1, h = 0, y₀ = 0.5.
    DeepLIFT-Rescale: the ReLU's multiplier is Δh/Δz = 4/5, so φ = 2 · 4/5 · (1·3, 2·1) = (4.8, 3.2), sum 8.
    SHAP: v(∅) = 0.5, v({0}) = 2·ReLU(2) + 0.5 = 4.5, v({1}) = 2·ReLU(1) + 0.5 = 2.5, v(N) = 8.5, so
    φ₀ = ½(4 + 6) = 5, φ₁ = ½(2 + 4) = 3. LRP-ε: the gradient 2 reaches z, relevance A ⊙ (2·1, 2·2) = (6, 4).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 2, 1, bias=False)
        self.head = nn.Conv2d(2, 1, 1)
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).view(2, 3, 1, 1))
            self.head.weight.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))
            self.head.bias.fill_(-1.0)
            self.fc.weight.copy_(torch.tensor([[2.0], [-1.0]]))
            self.fc.bias.copy_(torch.tensor([0.5, 0.0]))

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.head(self.features(x))), 1))


HAND_IMAGE = torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1, 1)


def test_hand_network_gives_the_hand_computed_coefficients():
    net = HandNet()
    torch.testing.assert_close(methods.get("lift-cam")(net, "features").weights(HAND_IMAGE, 0),
                               torch.tensor([[4.8, 3.2]]))
    torch.testing.assert_close(methods.get("lrp-cam")(net, "features").weights(HAND_IMAGE, 0),
                               torch.tensor([[6.0, 4.0]]))
    # two players: every kernel-weighted coalition is {0} or {1}, and the constrained fit is the Shapley value
    torch.testing.assert_close(methods.get("lime-cam")(net, "features").weights(HAND_IMAGE, 0),
                               torch.tensor([[5.0, 3.0]]))
    result = methods.get("lift-cam")(net, "features").contributions(HAND_IMAGE, 0)
    assert result.output.item() == pytest.approx(8.5) and result.reference_output.item() == pytest.approx(0.5)


def test_rescale_slopes_are_secants_with_the_derivative_where_the_points_meet():
    x = torch.tensor([8.0, 1.0, 7.0, -2.0, 2.0])
    x0 = torch.tensor([-1.0, 1.0, 7.0, -2.0, 0.0])
    # ReLU6: (6 − 0)/9; equal points → derivative 1 inside (0, 6), 0 in the flat parts; (2 − 0)/2
    torch.testing.assert_close(secant_slopes(nn.ReLU6(), x, x0), torch.tensor([6 / 9, 1.0, 0.0, 0.0, 1.0]))
    # hard-swish h(x) = x·relu6(x + 3)/6: h(2) = 5/3, h(0) = 0 → 5/6; h(8) = 8, h(−1) = −1/3 → (25/3)/9;
    # equal points: h′(1) = (2·1 + 3)/6 = 5/6, h′(7) = 1, h′(−2) = (2·(−2) + 3)/6 = −1/6
    torch.testing.assert_close(secant_slopes(nn.Hardswish(), x, x0),
                               torch.tensor([25 / 27, 5 / 6, 1.0, -1 / 6, 5 / 6]))


class PoolTail(nn.Module):
    """max-pool over the two pixels of a 1×2 map → z = 4·y − 5 → ReLU6."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d((1, 2))
        self.fc = nn.Linear(1, 1)
        with torch.no_grad():
            self.fc.weight.fill_(4.0)
            self.fc.bias.fill_(-5.0)
        self.act = nn.ReLU6()

    def forward(self, a):
        return self.act(self.fc(torch.flatten(self.pool(a), 1)))


def test_max_pool_rule_hand_values_with_a_nonzero_reference():
    # x = (1, 3), x₀ = (2, 0.5): maxima y = 3 (at 1), y₀ = 2 (at 0). u = x₁ − x₀ = 3 − 1 = 2 and
    # v = x₀[0] − x₀[1] = 2 − 0.5 = 1.5, so position 1 gets 2/3.5 = 4/7 and position 0 gets 3/7 of Δy = 1.
    # z = 7 vs 3, ReLU6 gives 6 vs 3: multiplier 3/4. m_x = 4 · 3/4 · (3/7, 4/7); Δx = (−1, 2.5):
    # contributions (−9/7, 30/7), summing to 3 = ReLU6(7) − ReLU6(3).
    acts = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)
    reference = torch.tensor([2.0, 0.5]).view(1, 1, 1, 2)
    result = deeplift(PoolTail(), acts, torch.tensor([0]), reference)
    torch.testing.assert_close(result.attributions.flatten(), torch.tensor([-9 / 7, 30 / 7]))
    assert result.output.item() == pytest.approx(6.0) and result.reference_output.item() == pytest.approx(3.0)


class ProductTail(nn.Module):
    def forward(self, a):
        return torch.flatten(a[:, 0:1] * a[:, 1:2], 1)


def test_product_rule_hand_values():
    # u = 2, v = 3 against u₀ = v₀ = 1: Δ(uv) = 5 = Δu·(v + v₀)/2 + Δv·(u + u₀)/2 = 1·2 + 2·1.5
    result = deeplift(ProductTail(), torch.tensor([2.0, 3.0]).view(1, 2, 1, 1), torch.tensor([0]),
                      torch.ones(1, 2, 1, 1))
    torch.testing.assert_close(result.coefficients, torch.tensor([[2.0, 3.0]]))
    with pytest.raises(UnsupportedTailOperation, match="LRP has no rule"):
        lrp(ProductTail(), torch.ones(1, 2, 1, 1), torch.tensor([0]))


# ------------------------------------------------------------------------------------ completeness
class LinearTail(nn.Module):
    def __init__(self, k=6, classes=4):
        super().__init__()
        self.fc = nn.Linear(k, classes)

    def forward(self, a):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))


class ConvTail(nn.Module):
    """conv + batch-norm + an activation + (optional) max-pool + pool + fc: the non-linear tails of the
    paper's VGG16 (max-pool) and of MobileNetV2 / EfficientNet-Lite (ReLU6)."""

    def __init__(self, activation, max_pool=False, k=6, classes=4):
        super().__init__()
        self.conv = nn.Conv2d(k, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = activation
        self.pool = nn.MaxPool2d(2, stride=1) if max_pool else nn.Identity()
        self.fc = nn.Linear(8, classes)
        with torch.no_grad():
            self.conv.weight.mul_(4)  # large pre-activations so that ReLU6 saturates somewhere
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2)
        self.eval()

    def forward(self, a):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.pool(self.act(self.bn(self.conv(a)))), 1), 1))


class CompositeTail(nn.Module):
    """A hard-swish written out (x · relu6(x + 3) / 6), a skip connection, a sigmoid gate and F.max_pool2d."""

    def __init__(self, k=6, classes=4):
        super().__init__()
        self.conv = nn.Conv2d(k, k, 1)
        self.gate = nn.Linear(k, k)
        self.fc = nn.Linear(k, classes)

    def forward(self, a):
        x = self.conv(a)
        x = x * F.relu6(x + 3) / 6 + a
        gate = torch.sigmoid(self.gate(x.mean((2, 3))))
        x = F.max_pool2d(x * gate[:, :, None, None], 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Elementwise(nn.Module):
    """An element-wise function written as a function or a tensor method (``abs``), for :class:`ConvTail`."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _prelu() -> nn.PReLU:
    prelu = nn.PReLU(8)
    with torch.no_grad():
        prelu.weight.copy_(torch.linspace(-0.5, 0.5, 8))
    return prelu


TAILS = {
    "linear": LinearTail,
    "prelu": lambda: ConvTail(_prelu()),
    "abs": lambda: ConvTail(Elementwise(torch.abs)),
    "abs-method": lambda: ConvTail(Elementwise(lambda x: x.abs() - 1.0)),
    "functional-prelu": lambda: ConvTail(Elementwise(lambda x: F.prelu(x, torch.tensor([0.25])))),
    "relu": lambda: ConvTail(nn.ReLU()),
    "relu6": lambda: ConvTail(nn.ReLU6(inplace=True)),
    "relu+maxpool": lambda: ConvTail(nn.ReLU(inplace=True), max_pool=True),
    "hardswish": lambda: ConvTail(nn.Hardswish()),
    "composite": CompositeTail,
}


@pytest.mark.parametrize("kind", sorted(TAILS))
@pytest.mark.parametrize("zero_reference", [True, False])
def test_completeness_for_linear_and_nonlinear_tails(kind, zero_reference):
    torch.manual_seed(0)
    tail = TAILS[kind]()
    acts = torch.randn(3, 6, 4, 4) * 2
    reference = None if zero_reference else torch.randn(3, 6, 4, 4)
    targets = torch.tensor([0, 3, 1])
    result = deeplift(tail, acts, targets, reference)
    with torch.no_grad():
        baseline = torch.zeros_like(acts) if reference is None else reference
        expected = (tail(acts) - tail(baseline)).gather(1, targets[:, None]).squeeze(1)
    scale = result.attributions.abs().flatten(1).sum(1)
    torch.testing.assert_close(result.coefficients.sum(1), expected, atol=float(1e-5 * scale.max()), rtol=0)
    torch.testing.assert_close(result.output - result.reference_output, expected, atol=1e-5, rtol=1e-5)


def test_rescale_is_not_the_gradient_on_a_saturating_tail():
    # the completeness above is a real test: gradient × input misses it where ReLU6 saturates
    torch.manual_seed(0)
    tail = ConvTail(nn.ReLU6())
    acts = torch.randn(2, 6, 4, 4) * 5
    targets = torch.tensor([0, 1])
    result = deeplift(tail, acts, targets)
    leaf = acts.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(tail(leaf).gather(1, targets[:, None]).sum(), leaf)
    gap = (grad * acts).flatten(1).sum(1) - (result.output - result.reference_output)
    assert gap.abs().min() > 0.3


def test_linear_tail_coefficients_are_the_weight_times_the_mean_activation():
    net = make_linear_tail_net()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    acts = F.avg_pool2d(x, 2)           # the layer's activations (block averages, already ≥ 0)
    targets = [0, 2, 1]
    expected = LINEAR_W[targets] * acts.mean((2, 3))
    for name in ("lift-cam", "lrp-cam"):
        torch.testing.assert_close(methods.get(name)(net, LAYER).weights(x, targets), expected)
    # KernelSHAP is exact on an additive game once the samples determine it
    lime = methods.get("lime-cam")(net, LAYER, n_samples=16)
    torch.testing.assert_close(lime.weights(x, targets), expected)


def test_lrp_epsilon_rule_hand_value():
    # one activation a = 1 → average pool p = 1 → fc z = 2p. With ε = 1 both layers' outputs are stabilised:
    # g = 1 · z/(z + 1) · 2 · p/(p + 1) = 2/3 · 2 · 1/2 = 2/3, relevance a·g = 2/3 (→ 2 as ε → 0).
    tail = LinearTail(k=1, classes=1)
    with torch.no_grad():
        tail.fc.weight.fill_(2.0)
        tail.fc.bias.zero_()
    acts = torch.ones(1, 1, 1, 1)
    assert lrp(tail, acts, torch.tensor([0]), epsilon=1.0).coefficients.item() == pytest.approx(2 / 3)
    assert lrp(tail, acts, torch.tensor([0])).coefficients.item() == pytest.approx(2.0)


def test_lrp_and_lift_cam_differ_on_a_nonlinear_tail_but_both_are_batch_consistent():
    net = make_nonlinear_tail_net()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    lift = methods.get("lift-cam")(net, LAYER)
    lrp_cam = methods.get("lrp-cam")(net, LAYER)
    for method in (lift, lrp_cam):
        batched = method.weights(x, [0, 1, 2])
        looped = torch.cat([method.weights(x[i:i + 1], [t]) for i, t in enumerate([0, 1, 2])])
        torch.testing.assert_close(batched, looped)
    result = lift.contributions(x, [0, 1, 2])
    torch.testing.assert_close(result.coefficients.sum(1), result.output - result.reference_output)


# ------------------------------------------------------------------------------------ references
def test_reference_image_gives_completeness_against_its_own_output():
    net = make_nonlinear_tail_net()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    cam = methods.get("lift-cam")(net, LAYER, reference="mean")
    result = cam.contributions(x, [0, 1])
    with torch.no_grad():
        reference_images = x.mean((2, 3), keepdim=True).expand_as(x)
        expected = net.eval()(x)[[0, 1], [0, 1]] - net(reference_images)[[0, 1], [0, 1]]
    torch.testing.assert_close(result.output - result.reference_output, expected)
    torch.testing.assert_close(result.coefficients.sum(1), expected)
    torch.testing.assert_close(result.reference_activations, F.avg_pool2d(reference_images, 2))
    given = methods.get("lift-cam")(net, LAYER, reference_activations=result.reference_activations)
    torch.testing.assert_close(given.weights(x, [0, 1]), result.coefficients)
    zeros = methods.get("lift-cam")(net, LAYER, reference_activations=torch.zeros(3, 4, 4))
    default = methods.get("lift-cam")(net, LAYER)
    torch.testing.assert_close(zeros.weights(x, [0, 1]), default.weights(x, [0, 1]))
    with pytest.raises(ValueError, match="not both"):
        methods.get("lift-cam")(net, LAYER, reference="mean", reference_activations=torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="unknown reference"):
        methods.get("lift-cam")(net, LAYER, reference="grey")


# ------------------------------------------------------------------------------------ errors
class SoftmaxTail(nn.Module):
    def forward(self, a):
        return torch.softmax(a.mean((2, 3)), dim=1)


class NormTail(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(6)

    def forward(self, a):
        return self.norm(a.mean((2, 3)))


class MaxTail(nn.Module):
    def forward(self, a):
        return a.amax(dim=(2, 3))


class DivisionTail(nn.Module):
    def forward(self, a):
        pooled = a.mean((2, 3))
        return pooled / pooled.sum(1, keepdim=True)


@pytest.mark.parametrize("tail, name", [(SoftmaxTail(), "softmax"), (NormTail(), "LayerNorm"),
                                        (MaxTail(), "amax"), (DivisionTail(), "divides by the activations")])
def test_a_tail_with_an_unsupported_operation_is_a_clear_error(tail, name):
    with pytest.raises(UnsupportedTailOperation, match=name):
        plan_tail(tail)


def test_prelu_and_abs_get_the_rescale_rule_not_the_gradient():
    # a gradient × input "contribution" misses completeness for |x|; the Rescale rule keeps it
    torch.manual_seed(0)
    for tail in (TAILS["prelu"](), TAILS["abs"]()):
        plan = plan_tail(tail)
        assert "elementwise" in [kind for _, kind in plan.describe()]
        acts = torch.randn(2, 6, 4, 4) * 2
        targets = torch.tensor([0, 2])
        result = deeplift(plan, acts, targets)
        with torch.no_grad():
            expected = (tail(acts) - tail(torch.zeros_like(acts))).gather(1, targets[:, None]).squeeze(1)
        torch.testing.assert_close(result.coefficients.sum(1), expected, atol=1e-4, rtol=1e-4)


def test_batch_norm_in_training_mode_is_refused():
    tail = ConvTail(nn.ReLU()).train()
    with pytest.raises(UnsupportedTailOperation, match="training mode"):
        deeplift(tail, torch.randn(1, 6, 4, 4), torch.tensor([0]))


def test_bad_layer_and_bad_tail_arguments_are_clear_errors():
    net = make_nonlinear_tail_net()
    with pytest.raises(ValueError, match="no layer named 'featurez'"):
        methods.get("lift-cam")(net, "featurez")
    x = torch.rand(1, 3, 8, 8)
    wrong = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))
    for name in ("lift-cam", "lrp-cam", "lime-cam"):
        with pytest.raises(TailError, match="does not reproduce"):
            methods.get(name)(net, LAYER, tail=wrong).weights(x, [0])
    with pytest.raises(TypeError, match="tail must be a torch.nn.Module"):
        methods.get("lift-cam")(net, LAYER, tail=lambda a: a)


def test_lift_cam_runs_the_network_once_and_only_the_tail_backwards():
    net = make_nonlinear_tail_net()
    cam = methods.get("lift-cam")(net, LAYER)       # traces the tail: before any hook is registered
    x = torch.rand(3, 3, 8, 8)
    rows = {"network": 0, "head": 0, "head_backward": 0, "features_backward": 0}

    def count(key):
        def hook(_module, inputs, _output=None):
            rows[key] += (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0]
        return hook

    handles = [net.normalize.register_forward_pre_hook(count("network")),
               net.head[0].register_forward_pre_hook(count("head")),
               net.head[0].register_full_backward_hook(lambda m, gi, go: rows.__setitem__(
                   "head_backward", rows["head_backward"] + go[0].shape[0])),
               net.features.register_full_backward_hook(lambda m, gi, go: rows.__setitem__(
                   "features_backward", rows["features_backward"] + 1))]
    try:
        cam.weights(x, [0, 1, 2])
    finally:
        for handle in handles:
            handle.remove()
    # one network pass (3 rows), the tail again on [A; A₀] (6 rows), one backward through the tail only
    assert rows == {"network": 3, "head": 3 + 6, "head_backward": 6, "features_backward": 0}



def _head_rows(net: nn.Module, cam, x: torch.Tensor, targets) -> tuple[dict, torch.Tensor]:
    """(network rows, classifier rows, classifier backward rows) of ``cam.weights(x, targets)``, and the weights."""
    rows = {"network": 0, "classifier": 0, "classifier_backward": 0}
    classifier = net.classifier[1]

    def add(key, n):
        rows[key] += n

    handles = [net.normalize.register_forward_pre_hook(lambda m, i: add("network", i[0].shape[0])),
               classifier.register_forward_pre_hook(lambda m, i: add("classifier", i[0].shape[0])),
               classifier.register_full_backward_hook(lambda m, gi, go: add("classifier_backward",
                                                                             go[0].shape[0]))]
    try:
        weights = cam.weights(x, targets)
    finally:
        for handle in handles:
            handle.remove()
    return rows, weights


def test_on_a_linear_tail_lift_cam_differentiates_the_networks_own_pass():
    # DeepLIFT's Linear rule: on a linear tail the multipliers are the gradient, so the network's own pass gives
    # them (one backward of it, as Grad-CAM's) and the tail is not run again on [A; A0]
    net = make_linear_tail_net().double().eval()  # eval: deeplift() is called directly below
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    targets = [0, 2, 1]
    acts = F.avg_pool2d(x, 2)
    for reference in (None, "blur", "mean"):
        cam = methods.get("lift-cam")(net, LAYER, reference=reference)
        assert cam.plan.is_linear()
        rows, weights = _head_rows(net, cam, x, targets)
        passes = 1 if reference is None else 2  # an image reference is one more network pass
        assert rows == {"network": 3 * passes, "classifier": 3 * passes, "classifier_backward": 3}
        # the same coefficients as the rule engine on [A; A0], and as contributions()
        reference_acts = cam.contributions(x, targets).reference_activations
        expected = deeplift(cam.plan, acts, torch.tensor(targets), reference_acts).coefficients
        torch.testing.assert_close(weights, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cam.contributions(x, targets).coefficients, weights, rtol=1e-12, atol=1e-12)
    given = torch.rand(3, 4, 4, dtype=torch.float64)
    cam = methods.get("lift-cam")(net, LAYER, reference_activations=given)
    torch.testing.assert_close(cam.weights(x, targets),
                               deeplift(cam.plan, acts, torch.tensor(targets), given).coefficients)
    with pytest.raises(ValueError, match="do not match activations"):
        methods.get("lift-cam")(net, LAYER, reference_activations=torch.rand(2, 4, 4)).weights(x, targets)


def test_a_given_tail_is_run_on_a_and_a0_and_checked_even_when_it_is_linear():
    net = make_linear_tail_net()
    tail = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), net.classifier)
    cam = methods.get("lift-cam")(net, LAYER, tail=tail)
    assert cam.plan.is_linear()
    rows, _ = _head_rows(net, cam, torch.rand(3, 3, 8, 8), [0, 1, 2])
    assert rows == {"network": 3, "classifier": 3 + 6, "classifier_backward": 6}

# ------------------------------------------------------------------------------------ KernelSHAP
def test_kernel_size_weights_known_values():
    # K = 4: (K − 1)/(s(K − s)) = 1, 3/4, 1 for s = 1, 2, 3
    expected = torch.tensor([1.0, 0.75, 1.0], dtype=torch.float64) / 2.75
    torch.testing.assert_close(kernel_size_weights(4), expected)
    torch.testing.assert_close(kernel_size_weights(3), torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 players"):
        kernel_size_weights(1)


def test_sampled_coalitions_are_paired_with_their_complements_and_never_empty_or_full():
    masks = sample_coalitions(7, 40, paired=True, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (40, 7)
    assert torch.equal(masks[1::2], ~masks[0::2])
    sizes = masks.sum(1)
    assert sizes.min() >= 1 and sizes.max() <= 6


def test_kernel_shap_recovers_an_additive_game_and_keeps_efficiency():
    # v(S) = 1 + Σ_{k∈S} a_k: the SHAP values are a exactly
    a = torch.tensor([0.5, -1.0, 2.0, 0.25, 0.0], dtype=torch.float64)
    masks = sample_coalitions(5, 30, generator=torch.Generator().manual_seed(1))
    values = 1 + masks.double() @ a
    torch.testing.assert_close(kernel_shap(masks, values, 1.0, 1 + float(a.sum())), a)
    # too few samples: not exact, but the constraint Σφ = v(N) − v(∅) still holds
    few = kernel_shap(masks[:2], values[:2], 1.0, 1 + float(a.sum()))
    assert float(few.sum()) == pytest.approx(float(a.sum()))


def test_lime_cam_on_an_additive_tail_recovers_the_exact_shap_values():
    # per-channel ReLU then average pool and a linear layer: additive over channels, φ_k = v({k}) − v(∅)
    class Additive(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Identity()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(torch.relu(self.features(x) - 0.3), 1), 1))

    torch.manual_seed(0)
    net = Additive().eval()
    x = torch.rand(2, 4, 3, 3)
    with torch.no_grad():
        empty = net(torch.zeros(1, 4, 3, 3))[0]
        singles = torch.stack([net(x * (torch.arange(4) == k).view(1, 4, 1, 1).float()) for k in range(4)], 1)
    expected = (singles - empty)[torch.arange(2), :, torch.tensor([1, 0])]
    weights = methods.get("lime-cam")(net, "features", n_samples=24).weights(x, [1, 0])
    torch.testing.assert_close(weights, expected.float(), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------ real network
@pytest.mark.slow
def test_mobilenet_v2_nonlinear_tail_completeness():
    from camrepro import models
    from camrepro.data import load_photos

    net, _ = models.load("mobilenet_v2")
    layer = models.MODELS["mobilenet_v2"].nonlinear_tail_layer
    images = load_photos("ai-benchmark", n=2, seed=0).images
    cam = methods.get("lift-cam")(net, layer)
    kinds = {kind for _, kind in cam.plan.describe()}
    assert "elementwise" in kinds                          # the ReLU6 of the head gets the Rescale rule
    result = cam.contributions(images)
    with torch.no_grad():
        logits = net(images)
        zero = cam.plan.tail(torch.zeros_like(result.activations))
    expected = (logits - zero).gather(1, result.targets[:, None]).squeeze(1)
    torch.testing.assert_close(result.coefficients.sum(1), expected, atol=1e-4, rtol=1e-5)
    assert result.targets.tolist() == logits.argmax(1).tolist()
