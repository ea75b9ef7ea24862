"""SHAP values of activation maps: the channel game, exact enumeration and Monte-Carlo permutation sampling
(src/camrepro/methods/channel_game.py, src/camrepro/metrics/channel_shap.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camrepro.methods.channel_game import ChannelGame, restrict_to_target, split_linear_prefix
from camrepro.methods.deeplift_rules import deeplift, plan_tail
from camrepro.metrics.channel_shap import (
    ChannelShap, exact_shap, marginal_contributions, permutation_shap, sample_orders, shapley_from_table,
)

pytestmark = pytest.mark.filterwarnings("error")


class HandTail(nn.Module):
    """z = A₀ + 2·A₁ − 1 → ReLU → y = 2h + 0.5 (the tail of test_lift_cam.HandNet): with A = (3, 1),
    v(∅) = 0.5, v({0}) = 4.5, v({1}) = 2.5, v(N) = 8.5, so φ = (5, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(2, 1, 1)
        self.fc = nn.Linear(1, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))
            self.head.bias.fill_(-1.0)
            self.fc.weight.fill_(2.0)
            self.fc.bias.fill_(0.5)

    def forward(self, a):
        return self.fc(torch.flatten(torch.relu(self.head(a)), 1))


HAND_ACTS = torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)


class AdditiveTail(nn.Module):
    """Per-channel ReLU, average pool, linear: v(S) = v(∅) + Σ_{k∈S} (v({k}) − v(∅)), an additive game."""

    def __init__(self, k=5, classes=3):
        super().__init__()
        self.fc = nn.Linear(k, classes)

    def forward(self, a):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(torch.relu(a - 0.2), 1), 1))


class InteractionTail(nn.Module):
    """conv → BN → ReLU6 → pool → linear: channels interact through the ReLU6."""

    def __init__(self, k=6, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(k, 5, 1)
        self.bn = nn.BatchNorm2d(5).eval()
        self.fc = nn.Linear(5, classes)
        with torch.no_grad():
            self.conv.weight.mul_(3)

    def forward(self, a):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu6(self.bn(self.conv(a))), 1), 1))


def test_shapley_from_table_known_games():
    # the hand tail's game
    table = torch.tensor([0.5, 4.5, 2.5, 8.5])
    torch.testing.assert_close(shapley_from_table(table), torch.tensor([5.0, 3.0], dtype=torch.float64))
    # three-player majority game: v(S) = 1 when |S| ≥ 2, symmetric, so φ = 1/3 each
    majority = torch.tensor([0, 0, 0, 1, 0, 1, 1, 1], dtype=torch.float64)
    torch.testing.assert_close(shapley_from_table(majority), torch.full((3,), 1 / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="power of two"):
        shapley_from_table(torch.zeros(6))


def test_exact_and_sampled_shap_of_the_hand_tail():
    expected = torch.tensor([[5.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(exact_shap(HandTail(), HAND_ACTS, 0), expected)
    # with two players an order and its reverse are all the orders: the antithetic estimate is exact
    estimate = permutation_shap(HandTail(), HAND_ACTS, 0, n_permutations=4)
    torch.testing.assert_close(estimate.values, torch.tensor([[5.0, 3.0]], dtype=torch.float64))
    torch.testing.assert_close(estimate.stderr, torch.zeros(1, 2, dtype=torch.float64))
    assert estimate.total.item() == pytest.approx(8.0)
    # DeepLIFT differs from SHAP here (4.8, 3.2): the ground truth discriminates
    lift = deeplift(HandTail(), HAND_ACTS, torch.tensor([0])).coefficients[0]
    assert lift.tolist() == pytest.approx([4.8, 3.2])


def test_permutation_shap_on_an_additive_tail_is_exact_with_zero_error():
    torch.manual_seed(0)
    tail = AdditiveTail().eval()
    acts = torch.rand(2, 5, 3, 3)
    targets = [2, 0]
    with torch.no_grad():
        empty = tail(torch.zeros(1, 5, 3, 3))[0]
        singles = torch.stack([tail(acts * (torch.arange(5) == k).view(1, 5, 1, 1)) for k in range(5)], 1)
    expected = (singles - empty)[torch.arange(2), :, torch.tensor(targets)].double()
    for fold in (None, False):
        estimate = permutation_shap(tail, acts, targets, n_permutations=6, fold=fold)
        torch.testing.assert_close(estimate.values, expected, atol=1e-6, rtol=1e-6)
        assert estimate.stderr.max() < 1e-6
    torch.testing.assert_close(exact_shap(tail, acts, targets), expected, atol=1e-6, rtol=1e-6)


def test_permutation_shap_converges_to_the_exact_values_with_a_root_n_standard_error():
    torch.manual_seed(1)
    tail = InteractionTail()
    acts = torch.randn(2, 6, 3, 3)
    targets = [0, 2]
    exact = exact_shap(tail, acts, targets)
    small = permutation_shap(tail, acts, targets, n_permutations=64, seed=1)
    large = permutation_shap(tail, acts, targets, n_permutations=256, seed=2)
    for estimate in (small, large):
        assert ((estimate.values - exact).abs() <= 4 * estimate.stderr + 1e-9).all()
        torch.testing.assert_close(estimate.values.sum(1), exact.sum(1))       # efficiency, exactly
    ratio = small.stderr.mean() / large.stderr.mean()                          # 4× the samples → ½ the error
    assert 1.6 < float(ratio) < 2.5
    assert large.n_samples == 128


def test_antithetic_sampling_helpers():
    orders = sample_orders(5, 6, antithetic=True, seed=0)
    assert orders.shape == (6, 5)
    assert torch.equal(orders[3:], orders[:3].flip(1))
    assert all(sorted(row.tolist()) == list(range(5)) for row in orders)
    # chain values along order (2, 0, 1): v(∅)=0, v({2})=1, v({2,0})=3, v(N)=6 → φ₂ = 1, φ₀ = 2, φ₁ = 3
    chain = torch.tensor([[0.0, 1.0, 3.0, 6.0]])
    torch.testing.assert_close(marginal_contributions(chain, torch.tensor([[2, 0, 1]])),
                               torch.tensor([[2.0, 3.0, 1.0]]))
    with pytest.raises(ValueError, match="even number"):
        permutation_shap(HandTail(), HAND_ACTS, 0, n_permutations=5)
    with pytest.raises(ValueError, match=">= 2"):
        permutation_shap(HandTail(), HAND_ACTS, 0, n_permutations=1, antithetic=False)


def test_relative_error_floor_known_value():
    estimate = ChannelShap(values=torch.tensor([[3.0, 4.0]], dtype=torch.float64),
                           stderr=torch.tensor([[0.3, 0.4]], dtype=torch.float64),
                           total=torch.tensor([7.0], dtype=torch.float64), n_permutations=8, antithetic=True)
    torch.testing.assert_close(estimate.relative_error_floor(), torch.tensor([0.1], dtype=torch.float64))
    assert estimate.n_samples == 4


def test_batch_equals_loop_and_reference_activations():
    torch.manual_seed(2)
    tail = InteractionTail()
    acts = torch.randn(3, 6, 2, 2)
    reference = torch.randn(6, 2, 2)
    batched = permutation_shap(tail, acts, [0, 1, 2], reference=reference, n_permutations=8)
    for i in range(3):
        single = permutation_shap(tail, acts[i:i + 1], [i], reference=reference, n_permutations=8)
        torch.testing.assert_close(single.values, batched.values[i:i + 1])
    with torch.no_grad():
        expected_total = tail(acts)[torch.arange(3), torch.arange(3)] - tail(reference[None])[0, :3]
    torch.testing.assert_close(batched.total, expected_total.double(), atol=1e-5, rtol=1e-5)


def test_the_fold_splits_the_tail_exactly_and_gives_the_direct_values():
    torch.manual_seed(3)
    tail = InteractionTail()
    plan = plan_tail(tail)
    prefix, suffix = split_linear_prefix(plan)
    a = torch.randn(4, 6, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(suffix(prefix(a)), tail(a))
        assert prefix(a).shape == (4, 5, 3, 3)          # cut at the input of the ReLU6 (after BN)
    acts = torch.randn(6, 3, 3)
    orders = sample_orders(6, 4, antithetic=True, seed=0)
    folded = ChannelGame(plan, acts, 1, fold=True).chain_values(orders)
    direct = ChannelGame(plan, acts, 1, fold=False).chain_values(orders)
    torch.testing.assert_close(folded, direct, atol=1e-5, rtol=1e-5)


def test_no_fold_when_a_path_bypasses_the_cut():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, a):
            return torch.flatten(F.adaptive_avg_pool2d(torch.relu(self.conv(a)) + a, 1), 1)

    assert split_linear_prefix(plan_tail(Skip())) is None          # the skip path bypasses the ReLU's input
    with pytest.raises(ValueError, match="fold=True"):
        ChannelGame(Skip(), torch.randn(3, 2, 2), 0, fold=True)
    assert not ChannelGame(Skip(), torch.randn(3, 2, 2), 0).folded


def test_restricting_a_linear_output_to_the_target_row_keeps_the_values():
    torch.manual_seed(4)
    tail = InteractionTail()
    plan = plan_tail(tail)
    restricted, index = restrict_to_target(plan, 2)
    assert index == 0
    a = torch.randn(3, 6, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(restricted.tail(a)[:, 0], tail(a)[:, 2])
    with pytest.raises(ValueError, match="out of range"):
        restrict_to_target(plan, 3)


def test_channel_game_values_known_answers_and_errors():
    game = ChannelGame(HandTail(), HAND_ACTS[0], 0)
    values = game.values(torch.tensor([[False, False], [True, False], [False, True], [True, True]]))
    torch.testing.assert_close(values, torch.tensor([0.5, 4.5, 2.5, 8.5], dtype=torch.float64))
    assert game.empty_value() == pytest.approx(0.5) and game.full_value() == pytest.approx(8.5)
    with pytest.raises(ValueError, match=r"masks must be a tensor \[N, 2\]"):
        game.values(torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="EXACT|enumerates"):
        exact_shap(HandTail(), torch.zeros(1, 20, 1, 1), 0)
    assert math.isclose(float(exact_shap(HandTail(), HAND_ACTS, torch.tensor([0])).sum()), 8.0)
