"""LIME-CAM: CAM coefficients fitted by KernelSHAP over the activation maps (Jung & Oh, ICCV 2021)."""

from __future__ import annotations

import torch
from torch import nn

from camrepro.methods.base import ChannelCAM
from camrepro.methods.channel_game import DEFAULT_BATCH_SIZE, ChannelGame
from camrepro.methods.deeplift_rules import check_reproduces, plan_for_layer
from camrepro.methods.validation import check_positive_int

# Relative cut-off of the pseudo-inverse: singular values of a paired design that are zero in exact arithmetic
# come out near 1e-15 × the largest; real directions of a K ≤ 4096-player design are far above 1e-10.
RANK_TOLERANCE = 1e-10


def kernel_size_weights(n_players: int) -> torch.Tensor:
    """Probabilities [K − 1] of the coalition sizes s = 1 … K − 1 under the Shapley kernel: the kernel
    π(S) = (K − 1) / (C(K, s) s (K − s)) summed over the C(K, s) coalitions of size s, normalised."""
    n_players = check_positive_int(n_players, "n_players")
    if n_players < 2:
        raise ValueError("KernelSHAP needs at least 2 players")
    sizes = torch.arange(1, n_players, dtype=torch.float64)
    weights = (n_players - 1) / (sizes * (n_players - sizes))
    return weights / weights.sum()


def sample_coalitions(n_players: int, n_samples: int, *, paired: bool = True,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``n_samples`` coalitions bool [n, K] drawn from the Shapley kernel: a size from
    :func:`kernel_size_weights`, then a uniformly random coalition of that size. ``paired``: each drawn
    coalition is followed by its complement (Covert & Lee, AISTATS 2021), which has the same kernel weight."""
    n_samples = check_positive_int(n_samples, "n_samples")
    drawn = (n_samples + 1) // 2 if paired else n_samples
    weights = kernel_size_weights(n_players)
    sizes = torch.multinomial(weights, drawn, replacement=True, generator=generator) + 1
    ranks = torch.rand(drawn, n_players, generator=generator).argsort(dim=1).argsort(dim=1)
    masks = ranks < sizes[:, None]
    if paired:
        masks = torch.stack([masks, ~masks], dim=1).reshape(-1, n_players)
    return masks[:n_samples]


def kernel_shap(masks: torch.Tensor, values: torch.Tensor, empty: float, full: float) -> torch.Tensor:
    """KernelSHAP estimate [K] (float64) from coalitions drawn with the Shapley kernel.

    Lundberg & Lee, NeurIPS 2017, Theorem 2: the SHAP values solve the weighted least-squares fit of the
    linear model g(z) = φ₀ + Σ_k φ_k z_k to v(z) with the Shapley kernel weights; the empty and full
    coalitions have infinite weight, i.e. φ₀ = v(∅) and Σ_k φ_k = v(N) − v(∅) are constraints. Coalitions
    sampled in proportion to the kernel enter the fit with equal weights. Writing φ = (Δ/K)·1 + Pψ with P the
    projector on sum-zero vectors, the fit is an unconstrained least-squares problem in ψ, solved with the
    minimum-norm solution, so the estimate treats all players alike when the samples do not determine it.

    The system is rank-deficient more often than not: ZP always has 1 in its null space (rank ≤ K − 1), and a
    coalition's complement contributes the negative of its row, so n paired samples have rank ≤ n/2 — the
    default budget n = K gives rank ≤ K/2. The solve is therefore the pseudo-inverse, computed once from the
    SVD in float64 with singular values below :data:`RANK_TOLERANCE` × the largest one treated as zero: a
    deterministic function of (masks, values), so repeated calls, and a batch against a loop, give the same
    coefficients (a pivoted-QR least-squares driver picks a basic solution that can change between calls on
    such a system).
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 2:
        raise ValueError("masks must be a bool tensor [N, K]")
    if not isinstance(values, torch.Tensor) or values.shape != (masks.shape[0],):
        raise ValueError(f"values must be a vector of {masks.shape[0]} coalition values")
    z = masks.to("cpu", torch.float64)
    players = z.shape[1]
    delta = float(full) - float(empty)
    target = values.detach().to("cpu", torch.float64) - float(empty)
    projected = z - z.sum(dim=1, keepdim=True) / players           # Z P
    residual = target - z.sum(dim=1) * delta / players               # y − Z 1 Δ/K
    return delta / players + minimum_norm_solve(projected, residual)


def minimum_norm_solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """argmin ‖x‖ over the least-squares solutions of ``matrix`` x ≈ ``rhs`` (float64, the pseudo-inverse from
    the SVD; singular values below ``RANK_TOLERANCE`` × the largest count as zero)."""
    u, singular, vh = torch.linalg.svd(matrix.to(torch.float64), full_matrices=False)
    if singular.numel() == 0 or float(singular[0]) == 0.0:
        return torch.zeros(matrix.shape[1], dtype=torch.float64)
    keep = singular > RANK_TOLERANCE * singular[0]
    inverse = torch.where(keep, 1.0 / torch.where(keep, singular, torch.ones_like(singular)),
                          torch.zeros_like(singular))
    return vh.T @ (inverse * (u.T @ rhs.to(torch.float64)))


class LIMECAM(ChannelCAM):
    """LIME-CAM: the coefficients φ_k are the KernelSHAP estimates of the SHAP values of the activation maps
    in the game v(S) = F_c(A_S) (absent maps set to zero); map = ReLU(Σ_k φ_k A_k).

    Paper: H. Jung and Y. Oh, "Towards Better Explanations of Class Activation Mapping", ICCV 2021, Sec. 4
    (the paper's model-agnostic approximation of the maps' SHAP values; KernelSHAP from Lundberg & Lee,
    NeurIPS 2017, the SHAP-consistent choice of LIME's kernel, loss and regulariser). Channels are the
    features, the baseline is the all-zero map, and the official code's budget is one coalition per channel
    (``n_samples=None`` → K). With that budget and ``paired=True`` the K coalitions are K/2 pairs, so the
    least-squares system has rank ≤ K/2 (see :func:`kernel_shap`): the coefficients are the minimum-norm fit,
    determined by the samples only up to that rank; pass a larger ``n_samples`` (≥ 2K) for a determined fit.

    Cost: one forward pass of the network and n_samples + 2 tail evaluations per image (batched,
    ``batch_size`` per call of the tail), plus a least-squares solve of size n_samples × K; no backward.

    Example:
        >>> maps = LIMECAM(net, layer="features.18", n_samples=2048)(images)

    Deviations from the paper: the official code calls captum's ``Lime`` with its defaults (a Lasso fit with
    α = 0.01 and an exponential cosine-distance kernel over coalitions drawn uniformly); we fit KernelSHAP
    (kernel-proportional sampling, paired with complements, constrained least squares), whose solution are
    SHAP values as the paper's argument requires. The same coalitions (from ``seed``) are used for every
    image, so a batch gives the same coefficients as a loop over its images.
    """

    name = "lime-cam"
    paper = "Jung & Oh, ICCV 2021 (KernelSHAP: Lundberg & Lee, NeurIPS 2017)"
    needs_gradients = False
    forward_passes = "1 forward + (n_samples + 2) tail forwards per image, no backward"
    range_free = True  # check_range=False accepted (see Explainer)

    def __init__(self, model: nn.Module, layer=None, *, tail: nn.Module | None = None,
                 n_samples: int | None = None, paired: bool = True, seed: int = 0,
                 batch_size: int = DEFAULT_BATCH_SIZE, check_range: bool = True, precision: str = "float32"):
        super().__init__(model, layer, check_range=check_range, precision=precision)
        self.n_samples = None if n_samples is None else check_positive_int(n_samples, "n_samples")
        if not isinstance(paired, bool):
            raise TypeError(f"paired must be a bool, got {type(paired).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.paired, self.seed = paired, seed
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.plan = plan_for_layer(self.model, self.layer_name, tail)

    def _channel_weights(self, images, acts, logits, targets):
        acts = acts.detach()
        players = acts.shape[1]
        n_samples = self.n_samples or players
        masks = sample_coalitions(players, n_samples, paired=self.paired,
                                  generator=torch.Generator().manual_seed(self.seed))
        ends = torch.stack([torch.zeros(players, dtype=torch.bool), torch.ones(players, dtype=torch.bool)])
        coalitions = torch.cat([ends, masks])
        weights, full_values = [], []
        for image in range(acts.shape[0]):
            target = int(targets[image])
            game = ChannelGame(self.plan, acts[image], target, batch_size=self.batch_size, fold=False)
            values = game.values(coalitions)
            weights.append(kernel_shap(masks, values[2:], values[0], values[1]))
            full_values.append(values[1])
        picked = logits.detach().gather(1, targets.view(-1, 1)).to("cpu", torch.float64)
        check_reproduces(torch.stack(full_values)[:, None], picked, self.name)
        return torch.stack(weights).to(device=acts.device, dtype=acts.dtype)
