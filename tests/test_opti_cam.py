"""Opti-CAM: known optimum, convergence, batch == loop, normalisations, early stop, snapshots, hygiene, errors."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch
from torch import nn

from conftest import LAYER, TripwireError, hooks_on, make_linear_tail_net, make_nonlinear_tail_net

from camrepro import methods
from camrepro.methods.base import upsample
from camrepro.methods.opti_cam import OptiCAM, OptiCAMExplanation, mask_gradient, normalize_mask
from camrepro.models.normalize import Normalize

# ------------------------------------------------------------------------------------- a network with a known optimum
# Three 4×4 feature maps: channel 0 is the indicator of the top-left 2×2 cells ("the object"), channels 1 and 2
# are horizontal and vertical ramps 0 → 1 that are 0 at the object's corner. Class 0's logit reads the pixels
# only: +1/64 on the object's 8×8 pixels, −1/192 on the other 192 pixels of the 16×16 image. On an all-ones image
# the masked logit is mean(mask over the object) − mean(mask elsewhere), largest when the mask is the object's
# indicator, i.e. when all the weight is on channel 0.
OBJECT = torch.zeros(4, 4)
OBJECT[:2, :2] = 1.0
RAMP_X = (torch.arange(4.0) / 3).view(1, 4).expand(4, 4)
PATTERNS = torch.stack([OBJECT, RAMP_X, RAMP_X.T.contiguous()])
PIXEL_WEIGHTS = torch.full((16, 16), -1.0 / 192)
PIXEL_WEIGHTS[:8, :8] = 1.0 / 64
# With w = e_0 the mask is up(OBJECT) (min 0, max 1). Bilinear ×4 upsampling (align_corners=False) of the step
# [1, 1, 0, 0] gives the row profile 1 ×6, 0.875, 0.625 | 0.375, 0.125, 0 ×6 (sum 8; 7.5 inside the object);
# the 2-D mask is the outer product, so the object holds 7.5² = 56.25 of the total 8² = 64.
OPTIMUM = 7.5**2 / 64 - (8.0**2 - 7.5**2) / 192   # = 0.838541666…


class PatternLayer(nn.Module):
    """Outputs PATTERNS scaled by each image's mean (1 for an all-ones image)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("patterns", PATTERNS.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patterns.unsqueeze(0) * x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)


class RegionNet(nn.Module):
    """normalize → features (PATTERNS) ; logits = pixel weights · grey image (class 0: the object, class 1: its
    negation)."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.features = PatternLayer()
        self.register_buffer("pixel_weights", torch.stack([PIXEL_WEIGHTS, -PIXEL_WEIGHTS]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        self.features(x)  # the layer whose maps Opti-CAM combines; the logits read the pixels directly
        return torch.einsum("bhw,chw->bc", x.mean(dim=1), self.pixel_weights)


def ones(batch: int = 1) -> torch.Tensor:
    return torch.ones(batch, 3, 16, 16)


# ----------------------------------------------------------------------------------------------- normalisations
def test_normalize_mask_by_hand():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]]])
    assert torch.allclose(normalize_mask(maps, "range"), torch.tensor([[[0.0, 0.5], [0.25, 1.0]]]))
    assert torch.allclose(normalize_mask(maps, "max"), torch.tensor([[[0.2, 0.6], [0.4, 1.0]]]))
    s1, s5 = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(-5.0))
    sig = normalize_mask(maps, "sigmoid")
    assert sig[0, 0, 0].item() == pytest.approx(s1, abs=1e-7)
    assert sig[0, 1, 1].item() == pytest.approx(s5, abs=1e-7)


def test_normalize_mask_is_per_image_and_never_nan():
    maps = torch.stack([torch.full((2, 2), 3.0), torch.tensor([[0.0, 2.0], [4.0, 4.0]])])
    rng = normalize_mask(maps, "range")
    assert torch.equal(rng[0], torch.zeros(2, 2))          # constant map → zeros, not NaN
    assert torch.allclose(rng[1], torch.tensor([[0.0, 0.5], [1.0, 1.0]]))
    mx = normalize_mask(maps, "max")
    assert torch.allclose(mx[0], torch.ones(2, 2))
    assert torch.equal(normalize_mask(torch.zeros(1, 2, 2), "max"), torch.zeros(1, 2, 2))


def test_normalize_mask_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown normalization 'minmax'"):
        normalize_mask(torch.ones(1, 2, 2), "minmax")


# ------------------------------------------------------------------------------------------------ known optimum
def test_weights_move_to_the_channel_the_logit_depends_on():
    net = RegionNet()
    cam = OptiCAM(net, "features")
    record = cam.explain(ones(), targets=0)
    w = record.weights[0]
    assert w[0] > 0.95 and w[1] < 0.03 and w[2] < 0.03
    # objective at u0 = 1/2 … (uniform weights) and at the end, against the hand-computed optimum
    uniform = torch.full((1, 3), 1 / 3)
    s0 = torch.einsum("bk,khw->bhw", uniform, PATTERNS)
    start = (normalize_mask(upsample(s0, (16, 16))) * PIXEL_WEIGHTS).sum().item()
    assert record.objective[0, 0].item() == pytest.approx(start, abs=1e-5)
    assert record.objective[0, -1].item() >= 0.99 * OPTIMUM
    assert record.objective[0, -1].item() <= OPTIMUM + 1e-6
    # the returned map is the optimised mask: close to up(OBJECT)
    expected = upsample(OBJECT.unsqueeze(0), (16, 16))
    assert torch.allclose(cam.mask(record.saliency, (16, 16)), expected, atol=0.03)


def test_objective_improves_over_the_iterations():
    record = OptiCAM(RegionNet(), "features", iterations=40).explain(ones(), 0)
    trajectory = record.objective[0]
    assert trajectory.shape == (41,)
    assert trajectory[-1] > trajectory[0] + 0.1
    rises = (trajectory[1:] >= trajectory[:-1] - 1e-6).float().mean().item()
    assert rises >= 0.9


def test_class_1_prefers_the_opposite_map():
    # class 1 reads −PIXEL_WEIGHTS: keep as little of the object as possible; the object channel must lose weight
    record = OptiCAM(RegionNet(), "features").explain(ones(), 1)
    assert record.weights[0, 0] < 0.05
    assert record.objective[0, -1] > record.objective[0, 0]


def test_diff_objective_matches_the_original_logit():
    # darker object: y_0(x) = 0.5 · 1 − 1 = −0.5, which a mask between the object and the ramps can reproduce
    net = RegionNet()
    image = torch.ones(1, 3, 16, 16)
    image[0, :, :8, :8] = 0.5
    assert net(image)[0, 0].item() == pytest.approx(-0.5, abs=1e-6)
    record = OptiCAM(net, "features", objective="diff").explain(image, 0)
    # Diff maximises −|y_c(x) − y_c(x ⊙ S)| ≤ 0: from about −0.29 at uniform weights to about 0
    assert record.objective[0, 0].item() < -0.25
    assert -0.01 < record.objective[0, -1].item() <= 0.0


def test_iterations_zero_gives_uniform_weights_and_the_initial_objective():
    cam = OptiCAM(RegionNet(), "features", iterations=0)
    record = cam.explain(ones(2), [0, 1])
    assert torch.allclose(record.weights, torch.full((2, 3), 1 / 3))
    assert record.objective.shape == (2, 1)
    assert torch.equal(record.steps, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(cam.weights(ones(2), [0, 1]), record.weights)


# ------------------------------------------------------------------------------------------------ batch == loop
@pytest.mark.parametrize("objective,normalization", [("mask", "range"), ("diff", "max"), ("mask", "sigmoid")])
def test_batch_equals_loop(objective, normalization):
    net = make_nonlinear_tail_net().double()
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cam = OptiCAM(net, LAYER, iterations=15, objective=objective, normalization=normalization)
    batch = cam.explain(images, [0, 1, 2])
    for i in range(3):
        single = cam.explain(images[i:i + 1], [i])
        assert torch.allclose(batch.weights[i], single.weights[0], atol=1e-10)
        assert torch.allclose(batch.objective[i], single.objective[0], atol=1e-10)
    assert torch.allclose(cam(images, [0, 1, 2]), torch.cat([cam(images[i:i + 1], [i]) for i in range(3)]),
                          atol=1e-10)


def test_targets_default_to_the_predicted_class():
    net = make_linear_tail_net()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        predicted = net.eval()(images).argmax(1)
    record = OptiCAM(net, LAYER, iterations=2).explain(images)
    assert torch.equal(record.targets, predicted)


# ---------------------------------------------------------------------------------------------------- options
def test_call_returns_the_mask_of_the_chosen_normalization():
    net = make_nonlinear_tail_net()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for normalization in ("range", "max", "sigmoid"):
        cam = OptiCAM(net, LAYER, iterations=3, normalization=normalization)
        record = cam.explain(images, [0, 1])
        expected = normalize_mask(upsample(record.saliency, (8, 8)), normalization)
        maps = cam(images, [0, 1])
        assert torch.allclose(maps, expected, atol=1e-6)
        assert maps.shape == (2, 8, 8) and maps.min() >= 0 and maps.max() <= 1
    assert cam(images, [0, 1]).min() >= 0.5  # sigmoid of a non-negative map


def test_space_decides_where_the_mask_multiplies():
    # mean 0.5, std 0.5: a black pixel is −1 after normalisation, a masked normalised pixel is 0 (the mean)
    net = RegionNet(mean=(0.5,) * 3, std=(0.5,) * 3)
    image = torch.full((1, 3, 16, 16), 0.75)
    uniform = torch.full((1, 3), 1 / 3)
    mask = normalize_mask(upsample(torch.einsum("bk,khw->bhw", uniform, 0.75 * PATTERNS), (16, 16)))[0]
    normalised = (image[0, 0] - 0.5) / 0.5
    by_hand = {"pixel": (((image[0, 0] * mask) - 0.5) / 0.5 * PIXEL_WEIGHTS).sum().item(),
               "normalized": (normalised * mask * PIXEL_WEIGHTS).sum().item()}
    for space, value in by_hand.items():
        record = OptiCAM(net, "features", iterations=0, space=space).explain(image, 0)
        assert record.objective[0, 0].item() == pytest.approx(value, abs=1e-6)
    assert by_hand["pixel"] != pytest.approx(by_hand["normalized"], abs=1e-3)


def test_snapshots_equal_shorter_runs():
    net = make_nonlinear_tail_net().double()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    record = OptiCAM(net, LAYER, iterations=12, snapshots=[0, 5, 12]).explain(images, [0, 2])
    assert sorted(record.snapshots) == [0, 5, 12]
    for t in (0, 5, 12):
        short = OptiCAM(net, LAYER, iterations=t).explain(images, [0, 2])
        assert torch.allclose(record.snapshots[t], short.saliency, atol=1e-10)
    assert torch.allclose(record.snapshots[12], record.saliency)


def test_early_stop_stops_per_image_and_returns_the_checked_weights():
    # Diff objective, large steps: image 0's original logit (darker object) lies inside the range the masked
    # logit can reach, and Adam's steps of ~lr overshoot it, so −|y(x) − y(x ⊙ S)| falls at some iteration
    net = RegionNet()
    image = torch.ones(2, 3, 16, 16)
    image[0, :, :8, :8] = 0.5
    cam = OptiCAM(net, "features", objective="diff", lr=0.5, iterations=60, early_stop=1)
    record = cam.explain(image, [0, 0])
    steps = record.steps.tolist()
    assert steps[0] < 60                      # stopped early …
    first_nan = int(torch.isnan(record.objective[0]).nonzero()[0])
    assert first_nan == steps[0] + 1          # … after evaluating the weights it returns
    last = record.objective[0, steps[0]].item()
    assert last < record.objective[0, steps[0] - 1].item()   # the rule: lower than at the previous check
    # the recorded objective is the objective of the returned map
    mask = cam(image[:1], [0])
    with torch.no_grad():
        y = net(image[:1])[0, 0] - net(image[:1] * mask.unsqueeze(1))[0, 0]
    assert -abs(y.item()) == pytest.approx(last, abs=1e-5)
    # each image stops on its own: image 1 alone gives the same weights as in the batch
    alone = cam.explain(image[1:], [0])
    assert torch.allclose(alone.weights[0], record.weights[1], atol=1e-6)
    assert alone.steps.item() == steps[1]


def test_early_stop_off_runs_every_iteration():
    record = OptiCAM(RegionNet(), "features", iterations=7).explain(ones(2), [0, 1])
    assert record.steps.tolist() == [7, 7]
    assert not torch.isnan(record.objective).any()


# ------------------------------------------------------------------------------------------- the cost's unit
def test_mask_gradient_by_hand():
    # RegionNet's class-0 logit is Σ_ij W_ij · mean_c(x_cij · m_ij): its gradient in m is W · mean_c(x)
    images = torch.cat([ones(), 0.5 * ones()])
    masks = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(6))
    grad = mask_gradient(RegionNet(), images, masks, [0, 1])
    assert torch.allclose(grad[0], PIXEL_WEIGHTS, atol=1e-7)
    assert torch.allclose(grad[1], -0.5 * PIXEL_WEIGHTS, atol=1e-7)


def test_mask_gradient_leaves_the_model_alone_and_checks_inputs():
    net = make_nonlinear_tail_net()
    images = torch.rand(1, 3, 8, 8)
    mask_gradient(net, images, torch.ones(1, 8, 8), 0)
    assert net.training and all(p.requires_grad and p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="needs explicit targets"):
        mask_gradient(net, images, torch.ones(1, 8, 8), None)
    with pytest.raises(ValueError, match=r"masks must be a tensor \[B, H, W\]"):
        mask_gradient(net, images, torch.ones(1, 4, 4), 0)


# --------------------------------------------------------------------------------------------------- hygiene
def test_model_state_grads_and_hooks_are_untouched():
    net = make_nonlinear_tail_net()
    sentinel = {name: torch.full_like(p, 7.0) for name, p in net.named_parameters()}
    for name, p in net.named_parameters():
        p.grad = sentinel[name].clone()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    OptiCAM(net, LAYER, iterations=4)(images, [0, 1])
    assert net.training
    for name, p in net.named_parameters():
        assert p.requires_grad
        assert torch.equal(p.grad, sentinel[name])
    assert hooks_on(net) == []


def test_state_restored_when_the_model_raises():
    net = make_nonlinear_tail_net()
    net.tripwire.arm(after=3)   # the capture pass and two iterations go through, the third raises
    with pytest.raises(TripwireError):
        OptiCAM(net, LAYER, iterations=10)(torch.rand(1, 3, 8, 8), [0])
    net.tripwire.disarm()
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert hooks_on(net) == []


def test_no_graph_outlives_an_iteration():
    """Every tensor autograd saves for backward is freed by the end of its iteration and after the call: a graph
    kept alive across iterations (``retain_graph=True`` and a reference to the loss, as in the official code)
    would raise the peak with the number of iterations."""
    net = make_nonlinear_tail_net()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    keep = {id(t) for t in (images, *net.parameters(), *net.buffers())}

    def peak_alive(iterations: int) -> tuple[int, int]:
        refs: list[weakref.ref] = []
        peak = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal peak
            if id(t) not in keep:
                refs.append(weakref.ref(t))
            # distinct tensors: one that every iteration saves again (the images) counts once
            peak = max(peak, len({id(r()) for r in refs if r() is not None}))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            OptiCAM(net, LAYER, iterations=iterations)(images, [0, 1])
        gc.collect()
        return peak, sum(r() is not None for r in refs)

    peak_short, alive_short = peak_alive(2)
    peak_long, alive_long = peak_alive(10)
    assert peak_short > 0
    assert peak_long == peak_short        # a leaked graph would pile up one iteration's tensors per step
    assert alive_short == alive_long == 0


def test_registered_by_name():
    assert methods.get("opti-cam") is OptiCAM
    assert OptiCAM.has_weights and OptiCAM.needs_layer


def test_explanation_type_and_shapes():
    net = make_linear_tail_net()
    record = OptiCAM(net, LAYER, iterations=3).explain(torch.rand(2, 3, 8, 8), [0, 3])
    assert isinstance(record, OptiCAMExplanation)
    assert record.saliency.shape == (2, 4, 4) and record.weights.shape == (2, 3)
    assert torch.allclose(record.weights.sum(1), torch.ones(2))
    assert record.objective.shape == (2, 4) and record.objective.dtype == torch.float32


# ---------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,message", [
    ({"iterations": -1}, "iterations must be a non-negative int"),
    ({"iterations": 2.5}, "iterations must be a non-negative int"),
    ({"iterations": True}, "iterations must be a non-negative int"),
    ({"lr": 0}, "lr must be a positive finite number"),
    ({"lr": float("nan")}, "lr must be a positive finite number"),
    ({"init": float("inf")}, "init must be a finite number"),
    ({"objective": "logit"}, "unknown objective 'logit'"),
    ({"normalization": "softmax"}, "unknown normalization 'softmax'"),
    ({"space": "lab"}, "unknown space 'lab'"),
    ({"early_stop": 0}, "early_stop must be None"),
    ({"snapshots": [0, 200]}, r"snapshot iterations must be ints in \[0, 100\]"),
])
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OptiCAM(make_linear_tail_net(), LAYER, **kwargs)


def test_bad_inputs_are_clear_errors():
    net = make_linear_tail_net()
    cam = OptiCAM(net, LAYER, iterations=1)
    with pytest.raises(ValueError, match="explains a layer"):
        OptiCAM(net)
    with pytest.raises(ValueError, match="has no layer named 'feature'"):
        OptiCAM(net, "feature")
    with pytest.raises(TypeError, match="snapshots must be a sequence"):
        OptiCAM(net, LAYER, snapshots=5)
    with pytest.raises(ValueError, match=r"shape \[B, C, H, W\]"):
        cam(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="target class 9 is out of range"):
        cam(torch.rand(1, 3, 8, 8), 9)
    with pytest.raises(ValueError, match="got 2 targets for a batch of 1"):
        cam(torch.rand(1, 3, 8, 8), [0, 1])


def test_normalized_space_needs_a_normalize_module():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="has no camrepro.models.Normalize module"):
        OptiCAM(net, "1", iterations=1, space="normalized")(torch.rand(1, 3, 4, 4), 0)


@pytest.mark.slow
def test_pretrained_mobilenet_objective_rises():
    from camrepro import models
    from camrepro.data.photos import load_photos

    net, _ = models.load("mobilenet_v2")
    images = load_photos("ai-benchmark", n=2, size=96).images
    record = OptiCAM(net, "features.18", iterations=12).explain(images)
    trajectory = record.objective
    assert (trajectory[:, -1] > trajectory[:, 0]).all()
    # Adam at lr 0.1 is not monotone step by step; the trend is: the later half of the run scores higher.
    half = trajectory.shape[1] // 2
    assert (trajectory[:, half:].mean(1) > trajectory[:, :half].mean(1)).all()


# ----------------------------------------------------------------------------- batch == loop, best iterate
class BatchNormNet(nn.Module):
    """16 channels with batch-norm (eval) before the layer, a non-linear tail: a float64 stand-in for the
    pretrained networks, small enough for the paper's 100 iterations."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU())
        self.fc = nn.Linear(8, 5)
        with torch.no_grad():
            self.features[1].running_mean.uniform_(-0.2, 0.2)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.head(self.features(x)), 1), 1))


def test_batch_equals_loop_over_the_full_protocol_in_float64():
    net = BatchNormNet().double().eval()
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cam = OptiCAM(net, "features", iterations=100)
    batch = cam.explain(images, [0, 1, 2, 3])
    for i in range(4):
        single = cam.explain(images[i:i + 1], [i])
        torch.testing.assert_close(batch.saliency[i], single.saliency[0], atol=1e-10, rtol=0)
        torch.testing.assert_close(batch.objective[i], single.objective[0], atol=1e-10, rtol=0)


def test_the_best_iterate_is_recorded_beside_the_last():
    record = OptiCAM(RegionNet(), "features", iterations=30, lr=0.5).explain(ones(2), [0, 1])
    assert record.best_objective.shape == (2,) and record.best_step.dtype == torch.long
    torch.testing.assert_close(record.best_objective, record.objective.max(dim=1).values)
    torch.testing.assert_close(record.objective.gather(1, record.best_step[:, None]).squeeze(1),
                               record.best_objective)
    torch.testing.assert_close(record.final_objective, record.objective[:, -1])
    assert (record.best_objective >= record.final_objective).all()


def test_the_final_objective_of_an_early_stopped_image_is_its_last_evaluation():
    net = make_nonlinear_tail_net()
    record = OptiCAM(net, LAYER, iterations=40, lr=1.0, early_stop=2).explain(
        torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1)), [0, 1, 2])
    for row, final, best in zip(record.objective, record.final_objective, record.best_objective):
        evaluated = row[~torch.isnan(row)]
        assert final == evaluated[-1] and best == evaluated.max()


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_pretrained_mobilenet_batch_equals_loop_in_float64():
    # in float32 the batched and single-image passes round differently and Adam amplifies it (see OptiCAM's
    # docstring); in float64 on one thread the per-image trajectories are the same, so a batch is a loop. With
    # two threads the kernels split their sums differently for 2 images and for 1: the first gradients differ
    # by 1e-15 (relative), the maps after 10 Adam steps by up to 1.6e-8 (measured on a 2-core Xeon)
    from camrepro import models
    from camrepro.data.photos import load_photos

    net, _ = models.load("mobilenet_v2")
    net = net.double()
    images = load_photos("ai-benchmark", n=2, size=64).images.double()
    cam = OptiCAM(net, "features.18", iterations=10)
    batch = cam.explain(images)
    for i in range(2):
        single = cam.explain(images[i:i + 1], batch.targets[i:i + 1])
        torch.testing.assert_close(batch.saliency[i], single.saliency[0], atol=1e-9, rtol=0)
        torch.testing.assert_close(batch.best_objective[i], single.best_objective[0], atol=1e-9, rtol=0)
