"""A-FMI (reconstructed) and the reference images: known answers by hand, completeness, batching, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import camrepro  # noqa: F401
from camrepro import methods
from camrepro.methods.a_fmi import AFMI, path_averaged_gradients, path_nodes
from camrepro.methods.references import (
    REFERENCE_NAMES, blur_reference, check_reference, image_reference, make_reference, mean_reference,
    noise_reference, zeros_reference,
)
from camrepro.methods.tail import TailError
from camrepro.metrics.faithfulness import gaussian_kernel1d

# ------------------------------------------------------------------------------------------- tiny networks


class LinearTailNet(nn.Module):
    """conv 1×1 (3 → 2, by hand) → [explained] → global average pool → fc (2 → 2, by hand)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[2.0, -1.0], [0.5, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(1))


def hand_image() -> torch.Tensor:
    """R, G, B planes chosen so that A_0 = R = [[1, .5], [0, 0]] and A_1 = G − B = [[0, 0], [1, 0]]."""
    red = torch.tensor([[1.0, 0.5], [0.0, 0.0]])
    green = torch.tensor([[0.0, 0.0], [1.0, 0.5]])
    blue = torch.tensor([[0.0, 0.0], [0.0, 0.5]])
    return torch.stack([red, green, blue]).unsqueeze(0)


class HingeNet(nn.Module):
    """One pixel, one channel: identity layer, then logit = ReLU(a − 1). From a = 0 to a = 3 the gradient is
    1[a > 1], so the exact integral is 2 and every quadrature can be worked out by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self.shift = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.shift.weight.fill_(1.0)
            self.shift.bias.fill_(-1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shift(self.layer(x))).flatten(1)


class QuadraticNet(nn.Module):
    """logit = Σ A² (a tail whose gradient is affine along any straight path)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.layer = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.layer(x)
        return (a * a).flatten(1).sum(dim=1, keepdim=True)


def small_cnn(nonlinear: bool, seed: int = 0) -> nn.Module:
    """A float64 CNN: conv (explained, 'features.1') then a ReLU tail or a linear tail (pool + fc)."""
    torch.manual_seed(seed)
    features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 8, 3, stride=2, padding=1))
    if nonlinear:
        head = [nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)]
    else:
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)]
    net = nn.Sequential()
    net.add_module("features", features)
    net.add_module("head", nn.Sequential(*head))
    return net.double().eval()


def images64(n: int, size: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- references


def test_zeros_and_mean_references_by_hand():
    x = hand_image()
    assert torch.equal(zeros_reference(x), torch.zeros(1, 3, 2, 2))
    expected = torch.tensor([0.375, 0.375, 0.125]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(mean_reference(x), expected)
    assert torch.allclose(make_reference(x, "mean"), expected)


def test_blur_reference_of_an_impulse_is_the_gaussian_and_keeps_a_constant_image():
    sigma = 1.5
    impulse = torch.zeros(1, 3, 21, 21, dtype=torch.float64)
    impulse[:, :, 10, 10] = 1.0
    kernel = gaussian_kernel1d(sigma, 2 * 5 + 1)  # window 2⌈3σ⌉ + 1 = 11
    blurred = blur_reference(impulse, sigma)
    assert torch.allclose(blurred[0, 1, 5:16, 5:16], torch.outer(kernel, kernel), atol=1e-12)
    assert float(blurred[0, 1, :5].abs().max()) == 0.0  # nothing beyond the 3σ window
    flat = torch.full((2, 3, 6, 6), 0.3, dtype=torch.float64)
    assert torch.allclose(blur_reference(flat, 10.0), flat)  # window wider than the image: replication
    assert torch.allclose(make_reference(impulse, "blur", blur_sigma=sigma), blurred)


def test_noise_reference_is_seeded_shared_by_the_batch_and_in_unit_range():
    x = torch.zeros(3, 3, 5, 5)
    a = noise_reference(x, seed=7)
    expected = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64).float()
    assert torch.equal(a[0:1], expected)
    assert torch.equal(a[0], a[2])                                  # one noise image for the whole batch
    assert torch.equal(noise_reference(x[:1], seed=7), a[:1])        # the batch does not change it
    assert not torch.equal(noise_reference(x, seed=8), a)
    assert float(a.min()) >= 0.0 and float(a.max()) < 1.0
    assert torch.equal(make_reference(x, "noise", noise_seed=7), a)


def test_image_reference_broadcasts_one_image_to_the_batch():
    x = torch.rand(4, 3, 5, 5)
    other = torch.rand(1, 3, 5, 5, dtype=torch.float64)
    out = image_reference(x, other)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[3], other[0].float())
    per_image = torch.rand(4, 3, 5, 5)
    assert torch.equal(make_reference(x, per_image), per_image)


@pytest.mark.parametrize("bad, error, match", [
    ("blurred", ValueError, "unknown reference 'blurred'"),
    ([0.0, 0.0, 0.0], TypeError, "got list"),
    (torch.zeros(1, 3, 4, 4, dtype=torch.long), TypeError, "dtype torch.int64"),
    (torch.zeros(3, 4, 4), ValueError, "add a batch dimension"),
    (torch.full((1, 3, 4, 4), 1.5), ValueError, r"\[0, 1\] pixel space"),
    (torch.full((1, 3, 4, 4), -0.1), ValueError, r"\[0, 1\] pixel space"),
    (torch.full((1, 3, 4, 4), float("nan")), ValueError, "NaN"),
    (torch.zeros(0, 3, 4, 4), ValueError, "empty"),
])
def test_bad_references_are_refused_with_a_message(bad, error, match):
    with pytest.raises(error, match=match):
        check_reference(bad)
    with pytest.raises(error, match=match):
        AFMI(LinearTailNet(), layer="conv", reference=bad)


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (1, 3, 4, 4), (1, 1, 2, 2)])
def test_a_reference_of_the_wrong_shape_is_refused_at_the_call(shape):
    afmi = AFMI(LinearTailNet(), layer="conv", reference=torch.zeros(shape))
    with pytest.raises(ValueError, match="does not fit images of shape"):
        afmi(hand_image().expand(3, 3, 2, 2))


def test_reference_names_are_the_documented_ones():
    assert REFERENCE_NAMES == ("zeros", "mean", "blur", "noise")


# --------------------------------------------------------------------------------------------- quadrature


def test_path_nodes_by_hand():
    alphas, weights = path_nodes(4, "midpoint")
    assert torch.allclose(alphas, torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=torch.float64))
    assert torch.allclose(weights, torch.full((4,), 0.25, dtype=torch.float64))
    alphas, weights = path_nodes(2, "trapezoid")
    assert torch.allclose(alphas, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert torch.allclose(weights, torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64))
    for bad, error in ((0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match="steps must be a positive int"):
            path_nodes(bad)
    with pytest.raises(ValueError, match="unknown quadrature rule 'simpson'"):
        path_nodes(3, "simpson")


# rule, steps → φ of HingeNet from a = 0 to a = 3 (exact integral: 2). Midpoint nodes a = 3(s + ½)/m;
# trapezoid nodes a = 3s/m with half weights at the ends; the gradient is 1[a > 1] (0 at the kink a = 1).
HINGE_CASES = [("midpoint", 1, 3.0), ("midpoint", 2, 1.5), ("midpoint", 3, 2.0), ("midpoint", 4, 2.25),
               ("trapezoid", 1, 1.5), ("trapezoid", 2, 2.25), ("trapezoid", 4, 1.875)]


@pytest.mark.parametrize("rule, steps, phi", HINGE_CASES)
def test_hinge_network_by_hand(rule, steps, phi):
    afmi = AFMI(HingeNet().double(), layer="layer", reference="zeros", steps=steps, rule=rule, check_range=False)
    x = torch.full((1, 1, 1, 1), 3.0, dtype=torch.float64)
    result = afmi.attribute(x)
    assert result.importance.item() == pytest.approx(phi)
    assert result.score.item() == pytest.approx(2.0) and result.reference_score.item() == pytest.approx(0.0)
    assert result.completeness_gap.item() == pytest.approx(phi - 2.0)
    assert result.saliency.item() == pytest.approx(phi * 3.0)           # ReLU(φ · ΔA), ΔA = 3


def test_path_averaged_gradients_do_not_depend_on_chunking():
    net = small_cnn(nonlinear=True)
    tail = net.head
    end = torch.randn(3, 8, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    start = torch.zeros_like(end)
    targets = torch.tensor([0, 4, 2])
    whole = path_averaged_gradients(tail, start, end, targets, steps=7, batch_size=100)
    for batch_size in (1, 5):
        parts = path_averaged_gradients(tail, start, end, targets, steps=7, batch_size=batch_size)
        assert torch.allclose(parts, whole, atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        path_averaged_gradients(tail, start[:2], end, targets)


# ------------------------------------------------------------------------------------------- known answers


def test_hand_weighted_network_zero_reference():
    # A = [[1, .5], [0, 0]], [[0, 0], [1, 0]]; y = W · mean(A), W = [[2, -1], [.5, 1]]: y = (0.5, 0.4375).
    # Class 0: ḡ = (2/4, -1/4) per pixel, φ = (0.5 · 1.5, -0.25 · 1) = (0.75, -0.25),
    # Σφ = 0.5 = y_0(x) − y_0(0);
    # map = ReLU(0.75 A_0 − 0.25 A_1) = [[0.75, 0.375], [0, 0]] → normalised [[1, .5], [0, 0]].
    afmi = AFMI(LinearTailNet(), layer="conv", reference="zeros", steps=1)
    result = afmi.attribute(hand_image())
    assert result.targets.tolist() == [0]
    expected_acts = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]]])
    assert torch.allclose(result.activations, expected_acts)
    assert torch.allclose(result.importance, torch.tensor([[0.75, -0.25]]))
    assert torch.allclose(result.saliency, torch.tensor([[[0.75, 0.375], [0.0, 0.0]]]))
    assert torch.allclose(afmi(hand_image()), torch.tensor([[[1.0, 0.5], [0.0, 0.0]]]))
    assert torch.allclose(afmi.weights(hand_image()), torch.tensor([[0.75, -0.25]]))
    # Class 1: ḡ = (0.5/4, 1/4), φ = (0.1875, 0.25), Σφ = 0.4375; map [[.1875, .09375], [.25, 0]] → /0.25.
    result = afmi.attribute(hand_image(), targets=1)
    assert torch.allclose(result.importance, torch.tensor([[0.1875, 0.25]]))
    assert torch.allclose(afmi(hand_image(), 1), torch.tensor([[[0.75, 0.375], [1.0, 0.0]]]))


def test_hand_weighted_network_grey_reference_uses_the_difference():
    # x′ = 0.5 everywhere: A(x′) = (0.5, 0), ΔA_0 = [[.5, 0], [-.5, -.5]], ΔA_1 = [[0, 0], [1, 0]].
    # φ = (0.5 · (-0.5), -0.25 · 1) = (-0.25, -0.25); Σφ = -0.5 = y_0(x) − y_0(x′) = 0.5 − 1.
    # map = ReLU(-0.25 ΔA_0 − 0.25 ΔA_1) = [[0, 0], [0, 0.125]]: only the pixel darker than grey in both maps.
    grey = torch.full((1, 3, 2, 2), 0.5)
    afmi = AFMI(LinearTailNet(), layer="conv", reference=grey, steps=1)
    result = afmi.attribute(hand_image(), targets=0)
    assert torch.allclose(result.importance, torch.tensor([[-0.25, -0.25]]))
    assert torch.allclose(result.reference_score, torch.tensor([1.0]))
    assert torch.allclose(result.saliency, torch.tensor([[[0.0, 0.0], [0.0, 0.125]]]))
    assert torch.allclose(afmi(hand_image(), 0), torch.tensor([[[0.0, 0.0], [0.0, 1.0]]]))


def test_mean_reference_with_a_linear_layer_and_pool_gives_zero_importance():
    # The mean colour keeps every channel's spatial mean through a 1×1 conv, so ΔA has zero mean per channel
    # and the linear tail sees no difference: φ = 0, the map is all zero (and normalises to zeros, not NaN).
    afmi = AFMI(LinearTailNet(), layer="conv", reference="mean", steps=1)
    assert torch.allclose(afmi.weights(hand_image()), torch.zeros(1, 2), atol=1e-7)
    assert torch.equal(afmi(hand_image()), torch.zeros(1, 2, 2))


@pytest.mark.parametrize("reference", ["zeros", "mean", "blur", "noise"])
def test_linear_tail_is_exact_with_one_step(reference):
    net = small_cnn(nonlinear=False)
    x = images64(3)
    afmi = AFMI(net, layer="features.1", reference=reference, steps=1, blur_sigma=2.0)
    result = afmi.attribute(x, targets=[0, 3, 4])
    assert float(result.completeness_gap.abs().max()) < 1e-12
    weight = net.head[2].weight  # φ_k = w_ck · Σ_ij ΔA_kij / (h·w)
    expected = weight[result.targets] * result.delta.mean(dim=(2, 3))
    assert torch.allclose(result.importance, expected, atol=1e-12)


@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_quadratic_tail_is_exact_with_one_step(rule):
    # F = Σ A²: ḡ = A(x′) + A(x), φ_k = Σ_ij (A(x)² − A(x′)²); both rules integrate an affine gradient
    # exactly.
    net = QuadraticNet().double()
    x = images64(2)
    reference = torch.full((1, 3, 8, 8), 0.25, dtype=torch.float64)
    result = AFMI(net, layer="layer", reference=reference, steps=1, rule=rule).attribute(x, targets=0)
    a, a_ref = net.layer(x), net.layer(reference.expand_as(x))
    assert torch.allclose(result.importance, (a * a - a_ref * a_ref).sum(dim=(2, 3)), atol=1e-10)
    assert float(result.completeness_gap.abs().max()) < 1e-10


@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_completeness_error_shrinks_as_steps_grow_on_a_relu_tail(rule):
    net = small_cnn(nonlinear=True)
    x = images64(4)
    gaps = {}
    for steps in (1, 16, 256):
        afmi = AFMI(net, layer="features.1", reference="blur", blur_sigma=2.0, steps=steps, rule=rule,
                    batch_size=1100)
        result = afmi.attribute(x)
        total = (result.score - result.reference_score).abs()
        gaps[steps] = float((result.completeness_gap.abs() / total).mean())
    # Across ReLU kinks the quadrature error falls roughly as 1/steps (not monotonically for every image).
    assert gaps[1] > 0.1                                # the ReLUs make one step inexact ...
    assert gaps[16] < gaps[1] / 4 and gaps[256] < gaps[16] / 4
    assert gaps[256] < 0.005                            # ... and the error vanishes as steps grow


# ------------------------------------------------------------------------------------------ batch and API


@pytest.mark.parametrize("reference", ["zeros", "mean", "blur", "noise", "tensor-per-image", "tensor-shared"])
def test_batch_equals_loop(reference):
    net = small_cnn(nonlinear=True)
    x = images64(4, seed=5)
    targets = [1, 0, 4, 2]
    given = {"tensor-per-image": images64(4, seed=9), "tensor-shared": images64(1, seed=9)}
    ref = given.get(reference, reference)
    batched = AFMI(net, layer="features.1", reference=ref, steps=5, batch_size=3, blur_sigma=2.0)
    maps, weights = batched(x, targets), batched.weights(x, targets)
    single = AFMI(net, layer="features.1", reference=ref, steps=5, batch_size=3, blur_sigma=2.0)
    for i in range(4):
        if reference == "tensor-per-image":
            single = AFMI(net, layer="features.1", reference=ref[i:i + 1], steps=5, batch_size=3,
                          blur_sigma=2.0)
        assert torch.allclose(single(x[i:i + 1], targets[i]), maps[i:i + 1], atol=1e-10)
        assert torch.allclose(single.weights(x[i:i + 1], targets[i]), weights[i:i + 1], atol=1e-10)


def test_registry_and_predicted_class():
    assert methods.get("a-fmi") is AFMI
    net = small_cnn(nonlinear=True)
    x = images64(3)
    result = AFMI(net, layer="features.1").attribute(x)
    assert torch.equal(result.targets, net(x).argmax(dim=1))
    assert afmi_maps_in_unit_range(AFMI(net, layer="features.1")(x))


def afmi_maps_in_unit_range(maps: torch.Tensor) -> bool:
    return maps.shape == (3, 8, 8) and float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0


def test_model_state_is_restored_and_hooks_removed_also_when_the_forward_fails(nonlinear_tail_net):
    from conftest import LAYER, TripwireError, hooks_on

    net = nonlinear_tail_net  # train mode, requires_grad=True: a user's model
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    AFMI(net, layer=LAYER, steps=3)(x)
    assert hooks_on(net) == [] and all(m.training for m in net.modules())
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    net.tripwire.arm(after=0)
    with pytest.raises(TripwireError):
        AFMI(net, layer=LAYER, steps=3)(x)
    assert hooks_on(net) == [] and all(m.training for m in net.modules())
    assert all(p.requires_grad and p.grad is None for p in net.parameters())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": 0}, ValueError, "steps must be a positive int"),
    ({"rule": "simpson"}, ValueError, "unknown quadrature rule"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
    ({"blur_sigma": -1.0}, ValueError, "blur_sigma must be a positive number"),
    ({"noise_seed": 1.5}, TypeError, "noise_seed must be an int"),
    ({"tail": "head"}, TypeError, "tail must be an nn.Module"),
])
def test_bad_parameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        AFMI(small_cnn(nonlinear=True), layer="features.1", **kwargs)


def test_a_wrong_tail_is_detected():
    net = small_cnn(nonlinear=True)
    wrong = small_cnn(nonlinear=True, seed=4).head
    with pytest.raises(TailError, match="does not reproduce the model's logits"):
        AFMI(net, layer="features.1", tail=wrong)(images64(2))
    right = AFMI(net, layer="features.1", tail=net.head, steps=4).attribute(images64(2), 0)
    derived = AFMI(net, layer="features.1", steps=4).attribute(images64(2), 0)
    assert torch.allclose(right.importance, derived.importance, atol=1e-12)


# ------------------------------------------------------------------------------------------- pretrained


@pytest.mark.slow
def test_mobilenet_v2_completeness_at_a_linear_and_a_nonlinear_tail():
    from camrepro import models
    from camrepro.data.photos import load_photos

    net, _ = models.load("mobilenet_v2")
    x = load_photos("ai-benchmark", n=2).images
    linear_tail = models.MODELS["mobilenet_v2"].default_layer
    exact = AFMI(net, layer=linear_tail, reference="blur", steps=1).attribute(x)
    total = exact.score - exact.reference_score
    assert float((exact.completeness_gap.abs() / total.abs()).max()) < 1e-5
    gaps = []
    for steps in (1, 8):
        result = AFMI(net, layer=models.MODELS["mobilenet_v2"].nonlinear_tail_layer, reference="blur",
                      steps=steps).attribute(x)
        gaps.append(float((result.completeness_gap.abs() / total.abs()).max()))
    assert gaps[0] > 0.02 and gaps[1] < gaps[0] / 10


@pytest.mark.parametrize("reference, rows", [("zeros", 4 + 1), ("noise", 4 + 1), ("tensor-shared", 4 + 1),
                                             ("mean", 4 + 4), ("tensor-per-image", 4 + 4)])
def test_shared_reference_is_forwarded_once_per_batch(reference, rows):
    net = small_cnn(nonlinear=True)
    x = images64(4, seed=5)
    given = {"tensor-per-image": images64(4, seed=9), "tensor-shared": images64(1, seed=9)}
    seen: list[int] = []
    handle = net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    try:
        result = AFMI(net, layer="features.1", reference=given.get(reference, reference), steps=3).attribute(x)
    finally:
        handle.remove()
    assert seen[-1] == rows                              # the capture pass: the images and their references
    assert result.delta.shape == (4, *result.activations.shape[1:])
    expected = AFMI(net, layer="features.1", reference=given.get(reference, reference), steps=3)
    for i in range(4):  # the same attribution as one image at a time (where nothing is shared)
        single = expected.attribute(x[i:i + 1]) if reference != "tensor-per-image" else AFMI(
            net, layer="features.1", reference=given[reference][i:i + 1], steps=3).attribute(x[i:i + 1])
        assert torch.allclose(single.importance, result.importance[i:i + 1], atol=1e-10)
        assert torch.allclose(single.reference_score, result.reference_score[i:i + 1], atol=1e-10)
