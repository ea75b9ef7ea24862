"""LIME-CAM's KernelSHAP solve: deterministic and well posed on the rank-deficient systems of its default budget."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from camrepro.methods.lime_cam import LIMECAM, kernel_shap, minimum_norm_solve, sample_coalitions


class WideNet(nn.Module):
    """32 channels at the explained layer, then a 1×1 conv + ReLU head: a non-additive game of 32 players."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(32, 16, 1), nn.ReLU())
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.head(self.features(x)), 1), 1))


def images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_repeated_calls_give_the_same_coefficients_with_the_default_budget():
    cam = LIMECAM(WideNet().eval(), layer="features")
    x = images()
    first = cam.weights(x, [0, 1, 2])
    for _ in range(4):
        assert (cam.weights(x, [0, 1, 2]) - first).abs().max() <= 1e-6


def test_a_batch_gives_the_coefficients_of_a_loop():
    cam = LIMECAM(WideNet().eval(), layer="features")
    x = images()
    batch = cam.weights(x, [0, 1, 2])
    loop = torch.cat([cam.weights(x[i:i + 1], [i]) for i in range(3)])
    assert (batch - loop).abs().max() <= 1e-6


def test_the_default_budget_is_rank_deficient_and_the_solution_is_the_minimum_norm_one():
    players = 12
    masks = sample_coalitions(players, players, generator=torch.Generator().manual_seed(0))
    z = masks.double()
    projected = z - z.mean(dim=1, keepdim=True)
    assert torch.linalg.matrix_rank(projected) <= players // 2
    rhs = torch.randn(players, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    solution = minimum_norm_solve(projected, rhs)
    torch.testing.assert_close(solution, torch.linalg.pinv(projected) @ rhs)
    # efficiency holds whatever the rank
    phi = kernel_shap(masks, rhs, 0.5, 2.0)
    torch.testing.assert_close(phi.sum(), torch.tensor(1.5, dtype=torch.float64))


def test_a_zero_system_gives_the_uniform_split():
    masks = torch.zeros(3, 4, dtype=torch.bool)
    phi = kernel_shap(masks, torch.zeros(3), 0.0, 4.0)
    torch.testing.assert_close(phi, torch.ones(4, dtype=torch.float64))
