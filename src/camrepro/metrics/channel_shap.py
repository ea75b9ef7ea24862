"""Ground-truth SHAP values of a layer's activation maps, by Monte-Carlo permutation sampling (or exactly, for
few channels), against which LIFT-CAM and the other CAMs' coefficients are compared.

LIFT-CAM (Jung & Oh, ICCV 2021, Sec. 3.2, Eq. 5-6) argues that the ideal coefficient of activation map A_k is
its Shapley value in the game v(S) = F_c(A_S) of :class:`camrepro.methods.channel_game.ChannelGame` (absent
maps set to the reference, all zeros by default):

    φ_k = Σ_{S ⊆ N∖{k}} |S|! (K − |S| − 1)! / K! · (v(S ∪ {k}) − v(S)) = E_π [v(P_k^π ∪ {k}) − v(P_k^π)],

with P_k^π the channels before k in a uniformly random order π. :func:`permutation_shap` averages the marginal
contributions over sampled orders (Castro, Gómez & Tejada, Computers & Operations Research 2009); with
``antithetic=True`` every order is paired with its reverse and the pair's mean is one sample (negatively
correlated halves, a smaller variance for the same cost). The standard error of each φ_k is the sample
standard deviation of the per-sample estimates over √(number of samples). Every sampled order's contributions
sum to v(N) − v(∅), so the estimate is efficient exactly, whatever the number of samples.

Cost: K + 1 tail evaluations per order (batched), far fewer when the tail starts with linear layers (the
game's fold: one pass over the K channels, then only the rest of the tail per prefix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from camrepro.methods.channel_game import DEFAULT_BATCH_SIZE, ChannelGame
from camrepro.methods.deeplift_rules import TailPlan, broadcast_reference, plan_tail
from camrepro.progress import progress

EXACT_MAX_PLAYERS = 16


@dataclass
class ChannelShap:
    """Estimated SHAP values of the channels of a batch of images.

    ``values`` and ``stderr`` float64 [B, K]; ``total`` float64 [B] = v(N) − v(∅) (= values.sum(1));
    ``n_samples``: independent samples per image (orders, or order pairs when antithetic).
    """

    values: torch.Tensor
    stderr: torch.Tensor
    total: torch.Tensor
    n_permutations: int
    antithetic: bool

    @property
    def n_samples(self) -> int:
        return self.n_permutations // 2 if self.antithetic else self.n_permutations

    def relative_error_floor(self) -> torch.Tensor:
        """‖stderr‖₂ / ‖values‖₂ per image [B]: the normalised error the sampling noise alone would give a
        perfect estimator — differences in normalised error smaller than this are not resolved."""
        norm = self.values.norm(dim=1)
        floor = self.stderr.norm(dim=1) / norm.clamp_min(torch.finfo(torch.float64).tiny)
        return torch.where(norm > 0, floor, torch.full_like(floor, math.nan))


def _plan(tail: nn.Module | TailPlan) -> TailPlan:
    return tail if isinstance(tail, TailPlan) else plan_tail(tail)


def _check_inputs(acts: object, targets: object) -> tuple[torch.Tensor, list[int]]:
    if (not isinstance(acts, torch.Tensor) or not acts.is_floating_point() or acts.dim() < 2
            or acts.shape[0] == 0):
        raise ValueError("acts must be a non-empty floating-point batch of activations [B, K, ...]")
    if isinstance(targets, int) and not isinstance(targets, bool):
        targets = [targets] * acts.shape[0]
    elif isinstance(targets, torch.Tensor):
        if targets.is_floating_point() or targets.dtype == torch.bool or targets.dim() != 1:
            raise TypeError("targets must be an int, a sequence of ints or a LongTensor [B]")
        targets = [int(t) for t in targets.tolist()]
    elif isinstance(targets, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool)
                                                    for t in targets):
        targets = list(targets)
    else:
        raise TypeError("targets must be an int, a sequence of ints or a LongTensor [B]")
    if len(targets) != acts.shape[0]:
        raise ValueError(f"got {len(targets)} targets for {acts.shape[0]} images")
    return acts.detach(), targets


def sample_orders(n_players: int, n_permutations: int, antithetic: bool, seed: int) -> torch.Tensor:
    """Orders long [P, K]: uniformly random permutations from a CPU generator seeded with ``seed``; with
    ``antithetic`` the second half is the first half reversed (row P/2 + i is row i backwards)."""
    generator = torch.Generator().manual_seed(int(seed))
    half = n_permutations // 2 if antithetic else n_permutations
    orders = torch.rand(half, n_players, generator=generator).argsort(dim=1)
    return torch.cat([orders, orders.flip(1)]) if antithetic else orders


def marginal_contributions(chain: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """Per-order marginal contributions [P, K] indexed by channel, from the values of growing coalitions
    ``chain`` [P, K + 1] along ``orders`` [P, K]: out[p, order[p, t]] = chain[p, t + 1] − chain[p, t]."""
    steps = chain[:, 1:] - chain[:, :-1]
    return torch.empty_like(steps).scatter_(1, orders.to(steps.device), steps)


def permutation_shap(tail: nn.Module | TailPlan, acts: torch.Tensor, targets, *,
                     reference: torch.Tensor | None = None, n_permutations: int = 64, antithetic: bool = True,
                     seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
                     fold: bool | None = None) -> ChannelShap:
    """Monte-Carlo SHAP values [B, K] of the channels of ``acts`` [B, K, …] for ``targets`` (an int, ints or a
    LongTensor [B]) with their standard errors (see the module docstring).

    ``reference``: the activations absent channels take ([K, …], [1, K, …] or [B, K, …]; None: zeros).
    The same orders are used for every image, so an image's estimate does not depend on its batch.
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int):
        raise TypeError(f"n_permutations must be an int, got {type(n_permutations).__name__}")
    if not isinstance(antithetic, bool):
        raise TypeError(f"antithetic must be a bool, got {type(antithetic).__name__}")
    minimum = 4 if antithetic else 2
    if n_permutations < minimum or (antithetic and n_permutations % 2):
        raise ValueError(f"n_permutations must be {'an even number ' if antithetic else ''}>= {minimum} "
                         f"(a standard error needs two samples), got {n_permutations}")
    plan = _plan(tail)
    acts, targets = _check_inputs(acts, targets)
    reference = broadcast_reference(reference, acts)
    orders = sample_orders(acts.shape[1], n_permutations, antithetic, seed)
    values, errors, totals = [], [], []
    for image, target in progress(enumerate(targets), total=len(targets), desc="SHAP permutations: images",
                                  unit="image"):
        game = ChannelGame(plan, acts[image], target, reference[image], batch_size=batch_size, fold=fold)
        chain = game.chain_values(orders)
        samples = marginal_contributions(chain, orders)
        if antithetic:
            half = n_permutations // 2
            samples = (samples[:half] + samples[half:]) / 2
        values.append(samples.mean(0))
        errors.append(samples.std(0, correction=1) / math.sqrt(samples.shape[0]))
        totals.append(chain[0, -1] - chain[0, 0])
    return ChannelShap(values=torch.stack(values), stderr=torch.stack(errors), total=torch.stack(totals),
                       n_permutations=n_permutations, antithetic=antithetic)


def shapley_from_table(table: torch.Tensor) -> torch.Tensor:
    """Exact Shapley values [K] from the value of every coalition: ``table`` [2^K], entry m being v of the
    coalition whose members are the set bits of m (bit k ↔ player k)."""
    if not isinstance(table, torch.Tensor) or table.dim() != 1 or table.numel() < 2:
        raise ValueError("table must be a vector of 2^K coalition values")
    players = int(round(math.log2(table.numel())))
    if 1 << players != table.numel():
        raise ValueError(f"table has {table.numel()} entries, not a power of two")
    table = table.to(torch.float64)
    masks = torch.arange(table.numel())
    sizes = torch.zeros_like(masks)
    for k in range(players):
        sizes += (masks >> k) & 1
    # weight of a coalition S of size s not containing k: s! (K − s − 1)! / K!
    weight = torch.tensor([math.factorial(s) * math.factorial(players - s - 1) / math.factorial(players)
                           for s in range(players)], dtype=torch.float64)
    phi = torch.empty(players, dtype=torch.float64)
    for k in range(players):
        without = masks[((masks >> k) & 1) == 0]
        phi[k] = (weight[sizes[without]] * (table[without | (1 << k)] - table[without])).sum()
    return phi


def exact_shap(tail: nn.Module | TailPlan, acts: torch.Tensor, targets, *,
               reference: torch.Tensor | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Exact SHAP values float64 [B, K] by evaluating all 2^K coalitions; K ≤ ``EXACT_MAX_PLAYERS``."""
    plan = _plan(tail)
    acts, targets = _check_inputs(acts, targets)
    players = acts.shape[1]
    if players > EXACT_MAX_PLAYERS:
        raise ValueError(f"exact SHAP enumerates 2^K coalitions; K = {players} > {EXACT_MAX_PLAYERS}, use "
                         "permutation_shap")
    reference = broadcast_reference(reference, acts)
    codes = torch.arange(1 << players)
    masks = ((codes[:, None] >> torch.arange(players)[None, :]) & 1).bool()
    out = []
    for image, target in enumerate(targets):
        game = ChannelGame(plan, acts[image], target, reference[image], batch_size=batch_size, fold=False)
        out.append(shapley_from_table(game.values(masks)))
    return torch.stack(out)
