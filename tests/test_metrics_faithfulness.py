"""Known answers for AD / AI / AG and insertion / deletion on a hand-built model whose probabilities are
closed-form functions of the pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import camrepro  # noqa: F401  (makes torchvision importable before anything else)
from camrepro.metrics import (
    PROBABILITY_EPS,
    average_drop,
    average_gain,
    average_increase,
    drop_increase_gain,
    gaussian_blur,
    gaussian_kernel1d,
    insertion_deletion,
    masked_probabilities,
    saliency_ranks,
)
from camrepro.models.normalize import Normalize


def sigmoid(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-s))


class ColumnBrightness(nn.Module):
    """Two logits: (Σ_c w_c · mean brightness of column c, 0), so P(class 0) = sigmoid(Σ_c w_c r_c)."""

    def __init__(self, weights):
        super().__init__()
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))

    def forward(self, x):
        columns = x.mean(dim=(1, 2))  # [B, W]: mean over channels and rows
        score = columns @ self.weights
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def make_model(weights=(1.0, 1.0, 1.0, 1.0), dropout: bool = False) -> nn.Module:
    # mean 0.5, std 0.25: pixel value v becomes z = 4v - 2, so black (0) becomes -2 and the mean colour 0.
    layers = [Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), ColumnBrightness(list(weights))]
    if dropout:
        layers.insert(1, nn.Dropout(p=0.5))
    return nn.Sequential(*layers).eval()


def gray(values) -> torch.Tensor:
    """Images [B, 3, 1, W] whose three channels equal ``values`` [B, W]."""
    v = torch.tensor(values, dtype=torch.float32)
    return v.view(v.shape[0], 1, 1, v.shape[1]).expand(-1, 3, 1, -1).contiguous()


# image pixels 1, 0.5, 0.75, 0.25 -> normalised z = 2, 0, 1, -1; with unit weights the class-0 score is 2.
IMAGE = gray([[1.0, 0.5, 0.75, 0.25]])
MAP = torch.tensor([[[1.0, 0.0, 0.5, 1.0]]])


# ---- AD / AI / AG --------------------------------------------------------------------------------


def test_ad_ai_ag_known_answer():
    p, o = [0.5, 0.8], [0.25, 0.9]
    # AD: (0.25/0.5 + 0) / 2 = 25 %; AI: one of two increases = 50 %; AG: (0 + 0.1/0.2) / 2 = 25 %.
    for cast in (np.array, torch.tensor):
        assert average_drop(cast(p), cast(o)) == pytest.approx(25.0)
        assert average_increase(cast(p), cast(o)) == pytest.approx(50.0)
        assert average_gain(cast(p), cast(o)) == pytest.approx(25.0)


def test_ad_ai_ag_guards_at_zero_and_one():
    p, o = np.array([1.0, 0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.5, 0.5])
    # terms: AD (0, 0, 0, 0.5), AI (0, 0, 1, 0), AG (0, 0, 0.5, 0): no 0/0 anywhere.
    assert average_drop(p, o) == pytest.approx(12.5)
    assert average_increase(p, o) == pytest.approx(25.0)
    assert average_gain(p, o) == pytest.approx(12.5)
    assert PROBABILITY_EPS > 0


def test_fake_cam_wins_ad_ai_loses_ag():
    # A map of ones (Fake-CAM up to one pixel) leaves o = p: AD = 0 (best), AI = 0, AG = 0 (worst).
    p = np.array([0.3, 0.6, 0.9])
    assert (average_drop(p, p), average_increase(p, p), average_gain(p, p)) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "p, o, message",
    [
        ([0.5, 1.2], [0.5, 0.5], "probabilities"),
        ([0.5, float("nan")], [0.5, 0.5], "probabilities"),
        ([0.5], [0.5, 0.5], "same length"),
        ([[0.5]], [[0.5]], "vector"),
    ],
)
def test_ad_ai_ag_reject_bad_input(p, o, message):
    with pytest.raises(ValueError, match=message):
        average_drop(np.array(p), np.array(o))


def test_ad_rejects_non_arrays():
    with pytest.raises(TypeError, match=r"torch\.Tensor or numpy\.ndarray"):
        average_gain([0.5], [0.5])


# ---- masked probabilities ------------------------------------------------------------------------


def test_masked_probabilities_pixel_and_normalized_space():
    model = make_model()
    # pixel space: image*map = 1, 0, 0.375, 0.25 -> z = 2, -2, -0.5, -1 -> score -1.5
    p, o = masked_probabilities(model, IMAGE, MAP, torch.tensor([0]), space="pixel")
    assert p.dtype == torch.float64 and p.shape == (1,)
    assert p.item() == pytest.approx(sigmoid(2.0), abs=1e-6)
    assert o.item() == pytest.approx(sigmoid(-1.5), abs=1e-6)
    # normalised space: z*map = 2, 0, 0.5, -1 -> score 1.5
    _, o_norm = masked_probabilities(model, IMAGE, MAP, 0, space="normalized")
    assert o_norm.item() == pytest.approx(sigmoid(1.5), abs=1e-6)
    # class 1 gets the complement
    p1, o1 = masked_probabilities(model, IMAGE, MAP, [1])
    assert p1.item() == pytest.approx(1 - sigmoid(2.0), abs=1e-6)
    assert o1.item() == pytest.approx(1 - sigmoid(-1.5), abs=1e-6)


def test_drop_increase_gain_hand_values_and_batching():
    model = make_model()
    images = torch.cat([IMAGE, gray([[0.5, 0.5, 0.5, 0.5]]), IMAGE])
    maps = torch.cat([MAP, torch.ones(1, 1, 4), torch.ones(1, 1, 4)])
    targets = torch.tensor([0, 0, 1])
    result = drop_increase_gain(model, images, maps, targets, batch_size=2)
    p = np.array([sigmoid(2.0), 0.5, 1 - sigmoid(2.0)])
    o = np.array([sigmoid(-1.5), 0.5, 1 - sigmoid(2.0)])
    np.testing.assert_allclose(result["p"], p, atol=1e-6)
    np.testing.assert_allclose(result["o"], o, atol=1e-6)
    assert result["AD"] == pytest.approx((p[0] - o[0]) / p[0] / 3 * 100, abs=1e-4)
    assert result["AI"] == 0.0
    assert result["AG"] == 0.0
    for batch_size in (1, 3, 64):
        again = drop_increase_gain(model, images, maps, targets, batch_size=batch_size)
        np.testing.assert_allclose(again["o"], result["o"], atol=1e-12)


def test_model_is_evaluated_in_eval_mode_and_flags_restored():
    model = make_model(dropout=True).train()
    for _ in range(3):  # dropout active would make the answer random
        _, o = masked_probabilities(model, IMAGE, MAP, 0)
        assert o.item() == pytest.approx(sigmoid(-1.5), abs=1e-6)
    assert all(module.training for module in model.modules())


def test_masked_probabilities_input_errors():
    model = make_model()
    with pytest.raises(ValueError, match=r"maps has shape \(1, 1, 3\)"):
        masked_probabilities(model, IMAGE, torch.ones(1, 1, 3), 0)
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        masked_probabilities(model, IMAGE, torch.ones(1, 1, 1, 4), 0)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        masked_probabilities(model, IMAGE, MAP * 1.5, 0)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        masked_probabilities(model, IMAGE, MAP - 0.1, 0)
    with pytest.raises(ValueError, match="NaN"):
        masked_probabilities(model, IMAGE, torch.full((1, 1, 4), float("nan")), 0)
    with pytest.raises(ValueError, match="model has 2 classes"):
        masked_probabilities(model, IMAGE, MAP, 2)
    with pytest.raises(ValueError, match="non-negative"):
        masked_probabilities(model, IMAGE, MAP, -1)
    with pytest.raises(ValueError, match=r"shape \[1\]"):
        masked_probabilities(model, IMAGE, MAP, [0, 1])
    with pytest.raises(TypeError, match="integer tensor"):
        masked_probabilities(model, IMAGE, MAP, torch.tensor([0.0]))
    with pytest.raises(TypeError, match="bool"):
        masked_probabilities(model, IMAGE, MAP, True)
    with pytest.raises(ValueError, match="masking space"):
        masked_probabilities(model, IMAGE, MAP, 0, space="logit")
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        masked_probabilities(model, IMAGE[0], MAP, 0)
    with pytest.raises(ValueError, match="batch_size"):
        masked_probabilities(model, IMAGE, MAP, 0, batch_size=0)


def test_model_must_return_logits_matrix():
    model = torch.nn.Sequential(make_model(), torch.nn.Unflatten(1, (2, 1)))  # logits [B, 2, 1]
    with pytest.raises(ValueError, match=r"logits \[B, classes\]"):
        masked_probabilities(model, IMAGE, MAP, 0)


def test_maps_within_rounding_of_one_are_accepted():
    model = make_model()
    _, o = masked_probabilities(model, IMAGE, torch.full((1, 1, 4), 1 + 1e-7), 0)
    assert o.item() == pytest.approx(sigmoid(2.0), abs=1e-6)


# ---- insertion / deletion ------------------------------------------------------------------------

# map 0.2, 0.9, 0.9, 0.5: order (stable on the tie) is pixel 1, pixel 2, pixel 3, pixel 0.
CURVE_MAP = torch.tensor([[[0.2, 0.9, 0.9, 0.5]]])


def trapezoid_quarters(values):
    return 0.25 * (values[0] / 2 + values[1] + values[2] + values[3] + values[4] / 2)


def test_saliency_ranks_are_stable_on_ties():
    ranks = saliency_ranks(torch.tensor([[[0.2, 0.9, 0.9, 0.5]], [[0.0, 0.0, 0.0, 0.0]]]))
    assert ranks.tolist() == [[3, 0, 1, 2], [0, 1, 2, 3]]


def test_deletion_pixel_space_known_curve():
    # scores after deleting (black, z = -2) pixels 1, 2, 3, 0 in turn: 2, 0, -3, -4, -8
    # (had the tie gone the other way, the second point would be -1).
    expected = [sigmoid(s) for s in (2, 0, -3, -4, -8)]
    out = insertion_deletion(make_model(), IMAGE, CURVE_MAP, 0, mode="deletion", steps=4, pixels_per_step=1)
    np.testing.assert_allclose(out["fractions"], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(out["curves"][0], expected, atol=1e-6)
    assert out["auc"] == pytest.approx(trapezoid_quarters(expected), abs=1e-6)
    assert out["auc_per_image"].shape == (1,)


def test_deletion_normalized_space_known_curve():
    # deleted pixels take the mean colour (z = 0): scores 2, 2, 1, 2, 0
    expected = [sigmoid(s) for s in (2, 2, 1, 2, 0)]
    out = insertion_deletion(
        make_model(), IMAGE, CURVE_MAP, 0, mode="deletion", steps=4, pixels_per_step=1, space="normalized"
    )
    np.testing.assert_allclose(out["curves"][0], expected, atol=1e-6)
    assert out["auc"] == pytest.approx(trapezoid_quarters(expected), abs=1e-6)


def test_insertion_from_tensor_baseline_known_curve():
    # baseline: mean grey (z = 0); inserting pixels 1 (z 0), 2 (z 1), 3 (z -1), 0 (z 2): scores 0, 0, 1, 0, 2
    expected = [sigmoid(s) for s in (0, 0, 1, 0, 2)]
    baseline = torch.full((3, 1, 4), 0.5)
    for space in ("pixel", "normalized"):  # a blended baseline is the same computation in both spaces
        out = insertion_deletion(
            make_model(),
            IMAGE,
            CURVE_MAP,
            0,
            mode="insertion",
            steps=4,
            pixels_per_step=1,
            baseline=baseline,
            space=space,
        )
        np.testing.assert_allclose(out["curves"][0], expected, atol=1e-6)
        assert out["auc"] == pytest.approx(trapezoid_quarters(expected), abs=1e-6)


def test_weighted_model_and_two_dimensional_row_major_ties():
    # 2x2 image, constant map: pixels are removed in row-major order (0,0), (0,1), (1,0), (1,1).
    model = make_model(weights=(1.0, 3.0))
    image = torch.full((1, 3, 2, 2), 0.75)  # z = 1 everywhere: score = 1*1 + 3*1 = 4
    # deleting (0,0) halves column 0's mean (z 1 -> mean(-2, 1) = -0.5); then (0,1) does so for column 1.
    scores = [4, -0.5 + 3, -0.5 + 3 * -0.5, -2 + 3 * -0.5, -2 + 3 * -2]
    out = insertion_deletion(model, image, torch.full((1, 2, 2), 0.5), 0, steps=4, pixels_per_step=1)
    np.testing.assert_allclose(out["curves"][0], [sigmoid(s) for s in scores], atol=1e-6)


def test_partial_last_step_uses_true_fraction():
    # 4 pixels, 3 steps -> 2 pixels per step: fractions 0, 0.5, 1, 1; scores 2, -3, -8, -8
    out = insertion_deletion(make_model(), IMAGE, CURVE_MAP, 0, steps=3)
    np.testing.assert_allclose(out["fractions"], [0, 0.5, 1, 1])
    curve = [sigmoid(s) for s in (2, -3, -8, -8)]
    np.testing.assert_allclose(out["curves"][0], curve, atol=1e-6)
    assert out["auc"] == pytest.approx(
        0.5 * (curve[0] + curve[1]) / 2 + 0.5 * (curve[1] + curve[2]) / 2, abs=1e-6
    )


def test_insertion_default_blur_baseline_and_batched_evaluation():
    model = make_model()
    images = torch.cat([IMAGE, gray([[0.8, 0.8, 0.8, 0.8]])])
    maps = torch.cat([CURVE_MAP, torch.rand(1, 1, 4)])
    out = insertion_deletion(model, images, maps, [0, 1], mode="insertion", steps=4)
    blurred = gaussian_blur(images)
    explicit = insertion_deletion(
        model, images, maps, [0, 1], mode="insertion", steps=4, baseline=blurred, batch_size=3
    )
    np.testing.assert_allclose(out["curves"], explicit["curves"], atol=1e-12)
    # point 0 is the blurred image, the last point the image itself
    p_blur, p_image = masked_probabilities(model, blurred, torch.ones(2, 1, 4), [0, 1])
    np.testing.assert_allclose(out["curves"][:, 0], p_blur.numpy(), atol=1e-6)
    np.testing.assert_allclose(out["curves"][:, -1], p_image.numpy(), atol=1e-6)
    # the blur of a constant image is that image (replicated borders): a flat curve at 1 - sigmoid(4*0.8*4-8)
    np.testing.assert_allclose(out["curves"][1], 1 - sigmoid(4 * (4 * 0.8 - 2)), atol=1e-6)
    for batch_size in (1, 7, 100):
        again = insertion_deletion(
            model, images, maps, [0, 1], mode="insertion", steps=4, batch_size=batch_size
        )
        np.testing.assert_allclose(again["curves"], out["curves"], atol=1e-12)


def test_gaussian_blur_of_an_impulse():
    image = torch.zeros(1, 1, 11, 11)
    image[0, 0, 5, 5] = 1.0
    out = gaussian_blur(image, sigma=5.0, kernel_size=11)
    total = sum(math.exp(-d * d / 50.0) for d in range(-5, 6))
    assert out[0, 0, 5, 5].item() == pytest.approx(1 / total**2, rel=1e-6)
    assert out[0, 0, 5, 6].item() == pytest.approx(math.exp(-1 / 50) / total**2, rel=1e-6)
    assert out[0, 0, 0, 0].item() == pytest.approx(math.exp(-50 / 50) / total**2, rel=1e-6)
    assert out.sum().item() == pytest.approx(1.0, rel=1e-6)
    assert gaussian_kernel1d(1.0, 3).tolist() == pytest.approx(
        [
            math.exp(-0.5) / (1 + 2 * math.exp(-0.5)),
            1 / (1 + 2 * math.exp(-0.5)),
            math.exp(-0.5) / (1 + 2 * math.exp(-0.5)),
        ]
    )


def test_insertion_deletion_input_errors():
    model = make_model()
    with pytest.raises(ValueError, match="mode"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, mode="both")
    with pytest.raises(ValueError, match="would not reach fraction 1"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, steps=2, pixels_per_step=1)
    with pytest.raises(ValueError, match="steps"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, steps=0)
    with pytest.raises(ValueError, match="pixels_per_step"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, pixels_per_step=0)
    with pytest.raises(ValueError, match="baseline"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, baseline="noise")
    with pytest.raises(ValueError, match="does not match images"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, baseline=torch.zeros(3, 2, 4))
    with pytest.raises(TypeError, match="baseline"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, baseline=0.5)
    with pytest.raises(ValueError, match="kernel_size"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 0, mode="insertion", blur_kernel_size=4)
    with pytest.raises(ValueError, match="model has 2 classes"):
        insertion_deletion(model, IMAGE, CURVE_MAP, 5)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        insertion_deletion(model, IMAGE, CURVE_MAP * 2, 0)


def test_read_only_arrays_are_accepted_without_a_warning():
    """pandas columns and np.load results are read-only; converting them must not warn (a warning fails the book)."""
    import warnings

    import numpy as np

    from camrepro.metrics import average_gain

    p, o = np.array([0.5, 0.8]), np.array([0.25, 0.9])
    p.flags.writeable = False
    o.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert average_gain(p, o) == 25.0
