"""Known-answer tests of the baseline methods on the hand-weighted networks of conftest.py.

Every expected number below is worked out by hand from the weights in conftest.py; the comments show the
arithmetic. The image ``IMAGE`` is constant on 2×2 blocks, so the layer's activations are exactly ``BLOCKS``:

    A_0 = [[1, 0], [0, 0]]      mean 0.25, sum 1
    A_1 = [[0, .5], [.5, 1]]    mean 0.5,  sum 2
    A_2 = [[.2, .2], [.2, .2]]  mean 0.2,  sum 0.8   (a constant map)

Linear-tail net: logits = LINEAR_W · (0.25, 0.5, 0.2) + LINEAR_B = (−0.55, 0.225, 0.575, 0), predicted
class 2,
and ∂y_c/∂A_kij = W[c, k] / 4 at every location (GAP over the 2×2 map).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    ACT_V,
    ACT_W,
    LAYER,
    LINEAR_B,
    LINEAR_W,
    block_image,
    make_activation_net,
)
from torch import nn

from camrepro import methods
from camrepro.methods.tail import TailError

pytestmark = pytest.mark.filterwarnings("error")

BLOCKS = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.5], [0.5, 1.0]], [[0.2, 0.2], [0.2, 0.2]]]])
IMAGE = block_image(BLOCKS)  # [1, 3, 4, 4]
MEANS = torch.tensor([0.25, 0.5, 0.2])
SUMS = torch.tensor([1.0, 2.0, 0.8])
LINEAR_LOGITS = torch.tensor([-0.55, 0.225, 0.575, 0.0])


def build(name: str, net: nn.Module, **kwargs) -> methods.Explainer:
    cls = methods.get(name)
    return cls(net, layer=LAYER, **kwargs) if cls.needs_layer else cls(net, **kwargs)


def close(actual: torch.Tensor, expected, atol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=1e-5)


def test_the_tiny_network_computes_what_the_comments_say(linear_tail_net):
    with torch.no_grad():
        close(linear_tail_net.eval()(IMAGE)[0], LINEAR_LOGITS)


# --- CAM ----------------------------------------------------------------------------------------------------


def test_cam_weights_are_the_classifier_rows_and_the_map_is_their_combination(linear_tail_net):
    cam = build("cam", linear_tail_net)
    close(cam.weights(IMAGE, [0])[0], LINEAR_W[0])
    close(cam.weights(IMAGE)[0], LINEAR_W[2])  # predicted class 2
    # map for class 2: ReLU(−A_0 + 0.25 A_1 + 2 A_2) = ReLU([[−1 + 0 + .4, .125 + .4], [.125 + .4, .25 + .4]])
    explanation = cam.explain(IMAGE, 2)
    close(explanation.saliency[0], [[0.0, 0.525], [0.525, 0.65]])
    assert explanation.targets.tolist() == [2]


def test_cam_refuses_a_non_linear_tail_naming_the_operation(nonlinear_tail_net, linear_tail_net):
    with pytest.raises(TailError, match=r"Conv2d module 'head\.0'"):
        build("cam", nonlinear_tail_net)
    # explaining the conv before the ReLU: the ReLU is in the tail
    with pytest.raises(TailError, match=r"ReLU module 'features\.1'"):
        methods.get("cam")(linear_tail_net, layer="features.0")


def test_cam_accepts_an_explicit_tail_and_checks_its_structure(linear_tail_net):
    fc = linear_tail_net.classifier[1]
    good = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)
    cam = methods.get("cam")(linear_tail_net, layer=LAYER, tail=good)
    close(cam.weights(IMAGE, [1])[0], LINEAR_W[1])
    with pytest.raises(TailError, match="MaxPool2d"):
        methods.get("cam")(
            linear_tail_net,
            layer=LAYER,
            tail=nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc),
        )
    with pytest.raises(TailError, match="exactly one global average pooling followed by one linear"):
        methods.get("cam")(
            linear_tail_net,
            layer=LAYER,
            tail=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3), fc),
        )
    with pytest.raises(TailError, match="exactly one global average pooling"):
        methods.get("cam")(linear_tail_net, layer=LAYER, tail=nn.Sequential(nn.Flatten(), fc))
    with pytest.raises(TypeError, match="tail must be an nn.Module"):
        methods.get("cam")(linear_tail_net, layer=LAYER, tail="fc")
    # a tail that does not reproduce the logits is caught at call time
    wrong = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
    with pytest.raises(TailError, match="does not reproduce the model's logits"):
        methods.get("cam")(linear_tail_net, layer=LAYER, tail=wrong)(IMAGE)


def test_cam_accepts_a_functional_tail(linear_tail_net):
    class FunctionalTail(nn.Module):  # mean over the spatial dims, then F.linear with the classifier's weight
        def __init__(self, fc: nn.Linear):
            super().__init__()
            self.weight, self.bias = fc.weight, fc.bias

        def forward(self, a):
            return F.linear(a.mean(dim=(2, 3)), self.weight, self.bias)

    cam = methods.get("cam")(linear_tail_net, layer=LAYER, tail=FunctionalTail(linear_tail_net.classifier[1]))
    close(cam.weights(IMAGE, [2])[0], LINEAR_W[2])


def test_cam_reads_the_current_classifier_weights(linear_tail_net):
    cam = build("cam", linear_tail_net)
    with torch.no_grad():
        linear_tail_net.classifier[1].weight[3] = torch.tensor([4.0, 5.0, 6.0])
    close(cam.weights(IMAGE, [3])[0], [4.0, 5.0, 6.0])


# --- Grad-CAM, XGrad-CAM, Grad-CAM++ on the linear tail -----------------------------------------------------


def test_grad_cam_weights_on_a_linear_tail_are_the_row_over_hw(linear_tail_net):
    w = build("grad-cam", linear_tail_net).weights(IMAGE, [0])
    close(w[0], LINEAR_W[0] / 4)  # (1, −2, .5) / (2·2)


def test_xgrad_cam_weights_on_a_linear_tail_are_the_row_over_hw(linear_tail_net):
    # Σ_ij (A_kij / Σ A_k) · W_ck / 4 = W_ck / 4 whenever Σ A_k ≠ 0
    close(build("xgrad-cam", linear_tail_net).weights(IMAGE, [2])[0], LINEAR_W[2] / 4)
    # a channel that is zero everywhere gets weight 0, not NaN
    blocks = BLOCKS.clone()
    blocks[0, 1] = 0.0
    close(build("xgrad-cam", linear_tail_net).weights(block_image(blocks), [2])[0], [-0.25, 0.0, 0.5])


def test_grad_cam_plusplus_closed_form_on_a_linear_tail(linear_tail_net):
    # g = W_ck / 4 everywhere, S_k = Σ A_k: α = g² / (2g² + S g³) = 1 / (2 + S g);
    # w_k = 4 · ReLU(g) / (2 + S_k g)
    w = build("grad-cam++", linear_tail_net).weights(
        IMAGE,
        [
            2,
        ],
    )
    # class 2: g = (−.25, .0625, .5):  (0,  .25 / (2 + 2 · .0625),  2 / (2 + .8 · .5))
    close(w[0], [0.0, 0.25 / 2.125, 2.0 / 2.4])
    w = build("grad-cam++", linear_tail_net).weights(IMAGE, [0])
    # class 0: g = (.25, −.5, .125):  (1 / (2 + .25),  0,  .5 / (2 + .8 · .125))
    close(w[0], [1.0 / 2.25, 0.0, 0.5 / 2.1])
    # class 3 has an all-zero row: g = 0 everywhere, every α is 0/0 → 0, and the map is zeros, not NaN
    assert torch.equal(build("grad-cam++", linear_tail_net).weights(IMAGE, [3]), torch.zeros(1, 3))
    assert torch.equal(build("grad-cam++", linear_tail_net)(IMAGE, [3]), torch.zeros(1, 4, 4))


# --- the non-linear tail: gradients that vary per location --------------------------------------------------
#
# head: z_0 = A_0 − A_1 = [[1, −.5], [−.5, −1]],  z_1 = A_1 + A_2 = [[.2, .7], [.7, 1.2]];
# ReLU → means (.25, .7)
# logits = HEAD_W · (.25, .7) + HEAD_B = (1.2, 2.35, −.725).  For class 1 (HEAD_W[1] = (−1, 3)):
#   at (0,0) both units are on:   g = −¼·V[0] + ¾·V[1] = (−.25, 1, .75)
#   elsewhere only unit 1 is on:  g = ¾·V[1] = (0, .75, .75)


def test_nonlinear_tail_logits(nonlinear_tail_net):
    with torch.no_grad():
        close(nonlinear_tail_net.eval()(IMAGE)[0], [1.2, 2.35, -0.725])


def test_grad_cam_on_a_nonlinear_tail(nonlinear_tail_net):
    # mean of g over the 4 locations: (−.25/4, (1 + 3·.75)/4, .75)
    close(build("grad-cam", nonlinear_tail_net).weights(IMAGE, [1])[0], [-0.0625, 0.8125, 0.75])


def test_xgrad_cam_on_a_nonlinear_tail(nonlinear_tail_net):
    # k0: (1·−.25)/1;  k1: (.5·.75 + .5·.75 + 1·.75)/2;  k2: .75 (constant map, constant gradient)
    close(build("xgrad-cam", nonlinear_tail_net).weights(IMAGE, [1])[0], [-0.25, 0.75, 0.75])


def test_grad_cam_plusplus_on_a_nonlinear_tail(nonlinear_tail_net):
    # k0: ReLU(g) = 0 → 0.  k1 (S = 2): g = 1 → α = 1/(2 + 2) → .25;  g = .75 (×3) → α = 1/3.5 → 3 · .75/3.5
    # k2 (S = .8): g = .75 (×4) → α = 1/(2 + .6) → 4 · .75/2.6
    close(
        build("grad-cam++", nonlinear_tail_net).weights(IMAGE, [1])[0],
        [0.0, 0.25 + 3 * 0.75 / 3.5, 4 * 0.75 / 2.6],
    )


def test_layer_cam_weights_each_location(nonlinear_tail_net, linear_tail_net):
    layer_cam = build("layer-cam", nonlinear_tail_net)
    assert not layer_cam.has_weights
    # Σ_k ReLU(g_kij) A_kij:  (0,0): 1·0 + .75·.2;  (0,1), (1,0): .75·.5 + .75·.2;  (1,1): .75·1 + .75·.2
    close(layer_cam.explain(IMAGE, 1).saliency[0], [[0.15, 0.525], [0.525, 0.9]])
    # on the linear tail, class 2: ReLU(g) = (0, .0625, .5): .0625·A_1 + .5·A_2
    close(
        build("layer-cam", linear_tail_net).explain(IMAGE, 2).saliency[0], [[0.1, 0.13125], [0.13125, 0.1625]]
    )
    with pytest.raises(TypeError, match="has no channel coefficients"):
        layer_cam.weights(IMAGE, 1)


# --- Ablation-CAM -------------------------------------------------------------------------------------------


def test_ablation_cam_on_a_linear_tail_is_w_times_mean_over_y(linear_tail_net):
    # y − y^k = W_ck · mean(A_k), so w_k = W_ck · mean(A_k) / y_c;  class 2: y = .575
    close(
        build("ablation-cam", linear_tail_net).weights(IMAGE, [2])[0], LINEAR_W[2] * MEANS / 0.575, atol=1e-5
    )


def test_ablation_cam_on_a_nonlinear_tail(nonlinear_tail_net):
    # class 1, y = 2.35.  Zero A_0: z_0 = −A_1 ≤ 0 → means (0, .7) → y = 2.1 + .5 = 2.6
    # zero A_1: z_0 = A_0, z_1 = A_2 → means (.25, .2) → y = −.25 + .6 + .5 = .85
    # zero A_2: z_1 = A_1 → means (.25, .5) → y = −.25 + 1.5 + .5 = 1.75
    expected = (2.35 - torch.tensor([2.6, 0.85, 1.75])) / 2.35
    close(build("ablation-cam", nonlinear_tail_net).weights(IMAGE, [1])[0], expected, atol=1e-5)


def test_ablation_cam_batches_channels_and_skips_zero_channels(nonlinear_tail_net):
    blocks = torch.cat([BLOCKS, BLOCKS.flip(1)])
    blocks[1, 0] = 0.0  # image 1: channel 0 is all zero → weight exactly 0
    images = block_image(blocks)
    one, many = (build("ablation-cam", nonlinear_tail_net, batch_size=n) for n in (1, 64))
    tail_inputs = []
    # the tail is a graph over the network's own modules: count the images reaching the head's convolution
    head_conv = nonlinear_tail_net.head[0]
    handle = head_conv.register_forward_pre_hook(lambda m, args: tail_inputs.append(args[0].shape[0]))
    try:
        w1 = one.weights(images, [1, 0])
        calls_unbatched = list(tail_inputs)
        tail_inputs.clear()
        w64 = many.weights(images, [1, 0])
    finally:
        handle.remove()
    torch.testing.assert_close(w1, w64)
    assert w64[1, 0] == 0.0
    # full forward (2 images) + tail check (2) + one copy per non-zero channel: 3 + 2 = 5
    assert calls_unbatched == [2, 2] + [1] * 5
    assert tail_inputs == [2, 2, 5]
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        build("ablation-cam", nonlinear_tail_net, batch_size=0)


# --- Score-CAM ----------------------------------------------------------------------------------------------

UP = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])  # bilinear 2 → 4, align_corners=False


def test_score_cam_weights_equal_the_masked_probabilities_computed_by_hand(linear_tail_net):
    # H_k = min-max(U A_k Uᵀ); the masked image x ∘ H_k has logits W · mean_pixels(x ∘ H_k) + b; the constant
    # map A_2 gives H_2 = 0, i.e. the black image, whose logits are b.
    x = IMAGE[0]
    masks = []
    for k in range(3):
        up = UP @ BLOCKS[0, k] @ UP.T
        span = up.max() - up.min()
        masks.append((up - up.min()) / span if span > 0 else torch.zeros_like(up))
    logits = torch.stack([LINEAR_W @ (x * h).mean(dim=(1, 2)) + LINEAR_B for h in masks])
    probabilities = torch.softmax(logits, dim=1)
    black = torch.softmax(LINEAR_B, dim=0)
    for c in range(4):
        w = build("score-cam", linear_tail_net).weights(IMAGE, [c])[0]
        close(w, probabilities[:, c] - black[c], atol=1e-6)
        raw = build("score-cam", linear_tail_net, subtract_baseline=False).weights(IMAGE, [c])[0]
        close(raw, probabilities[:, c], atol=1e-6)
    # the constant channel scores exactly the black image: weight 0
    assert build("score-cam", linear_tail_net).weights(IMAGE, [0])[0, 2] == 0.0


def test_score_cam_picks_the_one_channel_whose_masked_image_scores_high(linear_tail_net):
    # Class 3 of this copy of the network is 40 · (mean of colour 0 − mean of colour 1). Channel 0's map
    # covers the top-left block, where colour 0 is bright and colour 1 dark: its masked image scores p_3 ≈ 1.
    # Channel 1's
    # map covers the other blocks, where colour 1 is bright: p_3 ≈ 0, below the black image's p_3 = 1/Σe^b.
    with torch.no_grad():
        linear_tail_net.classifier[1].weight[3] = torch.tensor([40.0, -40.0, 0.0])
    blocks = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]]])
    w = build("score-cam", linear_tail_net).weights(block_image(blocks), [3])[0]
    assert w[0] > 0.5 and w[1] <= 0 and w[2] == 0
    maps = build("score-cam", linear_tail_net)(block_image(blocks), [3])
    assert maps[0, 0, 0] == 1.0 and maps[0, 3, 3] == 0.0  # the top-left block, and nothing else


def test_score_cam_is_batched_over_images_and_channels(linear_tail_net):
    images = block_image(torch.cat([BLOCKS, BLOCKS.flip(1), BLOCKS.roll(1, dims=-1)]))
    net = linear_tail_net
    net.tripwire.arm(after=10_000)  # counts the forward passes without stopping them
    one_by_one = build("score-cam", net, batch_size=1).weights(images, [0, 1, 2])
    passes_unbatched = 10_000 - net.tripwire.remaining
    net.tripwire.arm(after=10_000)
    batched = build("score-cam", net, batch_size=64).weights(images, [0, 1, 2])
    passes_batched = 10_000 - net.tripwire.remaining
    net.tripwire.disarm()
    torch.testing.assert_close(one_by_one, batched)
    # capture + black image + one masked image per non-constant channel (2 per image, A_2-like maps are flat)
    assert passes_unbatched == 1 + 1 + 6
    assert passes_batched == 1 + 1 + 1
    single = torch.cat(
        [build("score-cam", net).weights(images[i : i + 1], [t]) for i, t in enumerate([0, 1, 2])]
    )
    torch.testing.assert_close(single, batched)
    with pytest.raises(TypeError, match="batch_size must be a positive int, got bool"):
        build("score-cam", net, batch_size=True)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got -1"):
        build("score-cam", net, batch_size=-1)


# --- Fake-CAM -----------------------------------------------------------------------------------------------


def test_fake_cam_is_exactly_ones_with_a_zero_top_left_pixel_and_runs_nothing(linear_tail_net):
    images = torch.rand(2, 3, 6, 5)
    linear_tail_net.tripwire.arm(after=0)  # any forward pass would raise
    maps = methods.get("fake-cam")(linear_tail_net)(images, [0, 3])
    expected = torch.ones(2, 6, 5)
    expected[:, 0, 0] = 0.0
    assert torch.equal(maps, expected)
    linear_tail_net.tripwire.arm(after=1)  # without targets: one pass names the predicted class
    explanation = methods.get("fake-cam")(linear_tail_net).explain(IMAGE)
    assert explanation.targets.tolist() == [2]


# --- integrated gradients and DeepLIFT ----------------------------------------------------------------------


def test_pixel_attributions_on_the_linear_net_are_input_times_weight(linear_tail_net):
    # logit c = Σ_k W_ck · mean over the 16 pixels of x_k + b_c, linear along the path from the black image:
    # both methods give x_kij · W_ck / 16 exactly.
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 4)
    expected = x * LINEAR_W[[1, 2]].view(2, 3, 1, 1) / 16
    for name in ("integrated-gradients", "deeplift"):
        attributions = build(name, linear_tail_net).attributions(x, [1, 2])
        close(attributions, expected, atol=1e-6)
        maps_lowres = build(name, linear_tail_net).explain(x, [1, 2]).saliency
        close(maps_lowres, torch.relu(expected.sum(dim=1)), atol=1e-6)


def test_deeplift_rescale_through_relu6_by_hand():
    # One pixel x = (.5, .75, 1); normalised (x − .5)/.25 = (0, 1, 2); reference black → (−2, −2, −2).
    # pre-activations z = ACT_V · n + ACT_BIAS: image (5, 14), reference (−23, −6); ReLU6: (5, 6) and (0, 0).
    # Rescale multipliers Δr/Δz = (5/28, 6/20). Contribution of x_i to logit 0 (ACT_W[0] = (1, −.5)):
    #   Σ_m ACT_W[0, m] · m_m · ACT_V[m, i] · 4 · x_i
    net = make_activation_net(nn.ReLU6)
    x = torch.tensor([0.5, 0.75, 1.0]).view(1, 3, 1, 1)
    m = torch.tensor([5 / 28, 6 / 20])
    expected = (ACT_W[0] * m) @ ACT_V * 4 * x.flatten()
    close(expected, [3.4571428, 2.1428571, -3.6], atol=1e-5)  # the arithmetic written out
    attributions = methods.get("deeplift")(net).attributions(x, 0)
    close(attributions.flatten(), expected, atol=1e-5)
    close(attributions.sum(), 2.0, atol=1e-5)  # y(x) − y(0) = (5 − 3 + .2) − .2


@pytest.mark.parametrize("activation", [nn.ReLU, nn.ReLU6])
def test_deeplift_completeness_is_exact(activation):
    net = make_activation_net(activation)
    torch.manual_seed(1)
    x = torch.rand(3, 3, 5, 5)
    targets = [0, 1, 0]
    attributions = methods.get("deeplift")(net).attributions(x, targets)
    with torch.no_grad():
        net.eval()
        gap = net(x)[torch.arange(3), targets] - net(torch.zeros_like(x))[torch.arange(3), targets]
    close(attributions.sum(dim=(1, 2, 3)), gap, atol=1e-5)
    assert net.features[0](net.normalize(x)).max() > 6  # the ReLU6 does saturate on these images


def test_plain_captum_deeplift_breaks_completeness_on_relu6_where_ours_is_exact(relu6_net):
    from captum.attr import DeepLift as CaptumDeepLift

    net = relu6_net.eval()
    torch.manual_seed(1)
    x = torch.rand(3, 3, 5, 5)
    with pytest.warns(UserWarning, match="Setting forward, backward hooks"):
        plain = CaptumDeepLift(net).attribute(
            x.clone().requires_grad_(), baselines=torch.zeros_like(x), target=0
        )
    ours = methods.get("deeplift")(net).attributions(x, 0)
    with torch.no_grad():
        gap = net(x)[:, 0] - net(torch.zeros_like(x))[:, 0]
    close(ours.sum(dim=(1, 2, 3)), gap, atol=1e-5)
    assert (plain.detach().sum(dim=(1, 2, 3)) - gap).abs().max() > 0.5


def test_deeplift_is_the_op_by_op_engine_run_from_the_pixels(relu6_net):
    # pixel DeepLIFT is camrepro.methods.deeplift_rules (LIFT-CAM's engine) on the whole traced network
    from camrepro.methods.deeplift_rules import deeplift as op_by_op

    torch.manual_seed(4)
    x = torch.rand(3, 3, 5, 5)
    ours = methods.get("deeplift")(relu6_net).attributions(x, [0, 1, 0])
    theirs = op_by_op(relu6_net.eval(), x, torch.tensor([0, 1, 0]), torch.zeros_like(x)).attributions
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_deeplift_handles_a_nonlinearity_module_used_twice():
    # the same ReLU6 instance after two convolutions (as in EfficientNet-Lite's blocks)
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 2, 1)
            self.conv2 = nn.Conv2d(2, 2, 1)
            self.act = nn.ReLU6()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            x = self.act(self.conv2(self.act(self.conv1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = Twice()
    with torch.no_grad():
        net.conv1.weight.mul_(20)
        net.conv2.weight.mul_(5)
    x = torch.rand(2, 3, 3, 3)
    attributions = methods.get("deeplift")(net).attributions(x, 1)
    with torch.no_grad():
        gap = net(x)[:, 1] - net(torch.zeros_like(x))[:, 1]
    close(attributions.sum(dim=(1, 2, 3)), gap, atol=1e-5)


class _Functional(nn.Module):  # a functional ReLU6, a gate (product of two activations), abs, max-pool
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 4, 1)
        self.gate = nn.Sigmoid()
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight.mul_(10)

    def forward(self, x):
        y = torch.nn.functional.relu6(self.conv(x))
        y = torch.abs(y - 3.0) * self.gate(y)
        y = torch.nn.functional.max_pool2d(y, 2)
        return self.fc(y.mean(dim=(2, 3)))


def test_deeplift_rules_cover_functions_products_and_max_pooling():
    net = _Functional().eval()
    x = torch.rand(3, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    attributions = methods.get("deeplift")(net).attributions(x, [0, 1, 1])
    with torch.no_grad():
        gap = (net(x) - net(torch.zeros_like(x)))[torch.arange(3), [0, 1, 1]]
    close(attributions.sum(dim=(1, 2, 3)), gap, atol=1e-5)


def test_deeplift_refuses_operations_without_a_rule():
    class Softmaxed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return torch.softmax(self.conv(x).mean(dim=(2, 3)), dim=1)

    class Quotient(nn.Module):  # a division by an activation
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            y = self.conv(x).mean(dim=(2, 3))
            return y / (1.0 + y.abs())

    class Scaled(nn.Module):  # products and quotients by constants are linear
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)
            self.act = nn.ReLU6()

        def forward(self, x):
            return (self.act(self.conv(x * 2.0) / 3.0) * 0.5).mean(dim=(2, 3))

    with pytest.raises(ValueError, match="deeplift has no rule for the function softmax in Softmaxed"):
        methods.get("deeplift")(Softmaxed())
    with pytest.raises(ValueError, match="no rule for the function truediv in Quotient"):
        methods.get("deeplift")(Quotient())
    with pytest.raises(ValueError, match=r"no rule for the LayerNorm module '1\.1'"):
        methods.get("deeplift")(
            nn.Sequential(nn.Identity(), nn.Sequential(nn.Conv2d(3, 2, 1), nn.LayerNorm([2, 4, 4])),
                          nn.Flatten())
        )
    methods.get("deeplift")(Scaled())
    # the user's explicit choice: the plain gradient through the operation without a rule
    method = methods.get("deeplift")(Softmaxed(), check_rules=False)
    assert method(torch.rand(2, 3, 4, 4), [0, 1]).shape == (2, 4, 4)
    with pytest.raises(TypeError, match="check_rules must be a bool"):
        methods.get("deeplift")(Scaled(), check_rules=1)


def test_deeplift_names_a_network_that_torch_fx_cannot_trace():
    class Branching(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            x = x.mean(dim=(2, 3))
            return self.fc(x) if x.sum() > 0 else -self.fc(x)  # data-dependent control flow

    with pytest.raises(ValueError, match="deeplift cannot run on Branching: torch.fx could not trace"):
        methods.get("deeplift")(Branching())


def test_deeplift_of_a_batch_is_the_deeplift_of_each_image(relu6_net):
    torch.manual_seed(5)
    x = torch.rand(4, 3, 5, 5)
    targets = [0, 1, 1, 0]
    method = methods.get("deeplift")(relu6_net, reference="blur")
    batch = method.attributions(x, targets)
    loop = torch.cat([method.attributions(x[i:i + 1], targets[i]) for i in range(4)])
    torch.testing.assert_close(batch, loop, atol=1e-6, rtol=1e-5)


def test_integrated_gradients_completeness_within_quadrature_error(relu6_net):
    torch.manual_seed(2)
    x = torch.rand(2, 3, 5, 5)
    attributions = methods.get("integrated-gradients")(relu6_net, steps=128).attributions(x, [0, 1])
    with torch.no_grad():
        relu6_net.eval()
        gap = relu6_net(x)[[0, 1], [0, 1]] - relu6_net(torch.zeros_like(x))[[0, 1], [0, 1]]
    torch.testing.assert_close(attributions.sum(dim=(1, 2, 3)), gap, atol=2e-2, rtol=1e-2)
    # internal batching changes nothing but the number of images per pass
    whole = methods.get("integrated-gradients")(relu6_net, steps=16).attributions(x, [0, 1])
    small = methods.get("integrated-gradients")(relu6_net, steps=16, internal_batch_size=4).attributions(
        x, [0, 1]
    )
    torch.testing.assert_close(small, whole, atol=1e-5, rtol=1e-4)


def test_pixel_attribution_parameters_are_checked(linear_tail_net):
    with pytest.raises(ValueError, match="unknown reference 'grey'"):
        methods.get("deeplift")(linear_tail_net, reference="grey")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        methods.get("integrated-gradients")(linear_tail_net, steps=0)
    with pytest.raises(ValueError, match="unknown integration method"):
        methods.get("integrated-gradients")(linear_tail_net, method="simpson")
    # another reference: a grey image; DeepLIFT is still complete relative to it
    grey = torch.full((1, 3, 4, 4), 0.5)
    x = torch.rand(1, 3, 4, 4)
    attributions = methods.get("deeplift")(linear_tail_net, reference=grey).attributions(x, 0)
    close(attributions, (x - grey) * LINEAR_W[0].view(1, 3, 1, 1) / 16, atol=1e-6)


# --- against pytorch-grad-cam's formulas (an independent implementation) ------------------------------------


@pytest.mark.parametrize("name", ["grad-cam", "grad-cam++", "xgrad-cam"])
def test_weights_match_pytorch_grad_cam_formulas(name, linear_tail_net):
    pgc = pytest.importorskip("pytorch_grad_cam")
    theirs_cls = {"grad-cam": pgc.GradCAM, "grad-cam++": pgc.GradCAMPlusPlus, "xgrad-cam": pgc.XGradCAM}[name]
    # a synthetic "network" whose target logit is Σ A ⊙ G, so the gradient at the layer is exactly G
    torch.manual_seed(3)
    acts = torch.rand(2, 5, 3, 4).requires_grad_(True)
    grads = torch.randn(2, 5, 3, 4)
    logits = torch.stack([(acts * grads).sum(dim=(1, 2, 3)), torch.zeros(2)], dim=1)
    ours = build(name, linear_tail_net)._channel_weights(None, acts, logits, torch.tensor([0, 0]))
    theirs = theirs_cls.get_cam_weights(None, None, None, None, acts.detach().numpy(), grads.numpy())
    # pytorch-grad-cam adds 1e-6 to the Grad-CAM++ denominator (ours is exact): a looser tolerance there
    tolerance = 1e-3 if name == "grad-cam++" else 1e-5
    torch.testing.assert_close(ours, torch.from_numpy(theirs).float(), rtol=tolerance, atol=tolerance)
