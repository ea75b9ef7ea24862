"""A-FMI: feature-map importance of the difference from a reference image (Zhang et al., arXiv:2104.05527).

Only the abstract of the paper is available and no code is public, so the method below is a reconstruction
from the abstract's description; every equation is ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from camrepro.methods.base import Explainer, Explanation, target_scores
from camrepro.methods.references import (
    DEFAULT_BLUR_SIGMA, ReferenceLike, check_blur_sigma, check_noise_seed, check_reference, make_reference,
)
from camrepro.methods.tail import check_tail, extract_tail
from camrepro.methods.validation import TargetsLike, check_images, check_positive_int

RULES = ("midpoint", "trapezoid")


def path_nodes(steps: int, rule: str = "midpoint") -> tuple[torch.Tensor, torch.Tensor]:
    """Positions α ∈ [0, 1] along the path and their quadrature weights (float64, weights sum to 1).

    ``"midpoint"``: α_s = (s + ½)/m for s = 0 … m−1, each weight 1/m (m evaluations; exact when the
    gradient is affine along the path). ``"trapezoid"``: α_s = s/m for s = 0 … m, weights 1/m except 1/(2m) at
    both ends (m + 1 evaluations).
    """
    steps = check_positive_int(steps, "steps")
    if rule == "midpoint":
        alphas = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
        return alphas, torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    if rule == "trapezoid":
        alphas = torch.arange(steps + 1, dtype=torch.float64) / steps
        weights = torch.full((steps + 1,), 1.0 / steps, dtype=torch.float64)
        weights[0] = weights[-1] = 0.5 / steps
        return alphas, weights
    raise ValueError(f"unknown quadrature rule {rule!r}; expected one of {RULES}")


def path_averaged_gradients(tail: nn.Module, start: torch.Tensor, end: torch.Tensor, targets: torch.Tensor, *,
                            steps: int = 16, rule: str = "midpoint", batch_size: int = 64) -> torch.Tensor:
    """ḡ = ∫₀¹ ∂F_c/∂A (start + α (end − start)) dα by quadrature, for every image at once.

    ``tail`` maps activations [N, K, h, w] to logits [N, classes]; ``start`` (A(x′)) and ``end`` (A(x)) are
    [B, K, h, w]; ``targets`` [B] the class c of each image. The B × (number of nodes) points of all paths are
    stacked and run through the tail ``batch_size`` points at a time (one forward and one backward per chunk);
    a chunk may mix images and path positions. Returns ḡ [B, K, h, w] in the activations' dtype.
    """
    if start.shape != end.shape or start.dim() != 4:
        raise ValueError(f"start and end must be activations of the same shape [B, K, h, w], "
                         f"got {tuple(start.shape)} and {tuple(end.shape)}")
    batch_size = check_positive_int(batch_size, "batch_size")
    alphas, weights = path_nodes(steps, rule)
    alphas = alphas.to(device=end.device, dtype=end.dtype)
    weights = weights.to(device=end.device, dtype=end.dtype)
    start, end = start.detach(), end.detach()
    delta = end - start
    batch, points = end.shape[0], alphas.shape[0]
    average = torch.zeros_like(end)
    for first in range(0, batch * points, batch_size):
        pair = torch.arange(first, min(first + batch_size, batch * points), device=end.device)
        image, node = pair // points, pair % points
        shape = (-1, 1, 1, 1)
        leaf = (start[image] + alphas[node].view(shape) * delta[image]).requires_grad_(True)
        with torch.enable_grad():
            # the tail gets a copy: an in-place first operation would otherwise modify the leaf itself
            scores = target_scores(tail(leaf.clone()), targets[image])
            (grads,) = torch.autograd.grad(scores.sum(), leaf)
        average.index_add_(0, image, grads * weights[node].view(shape))
    return average


@dataclass
class AFMIAttribution:
    """Everything A-FMI computes for a batch (all tensors detached).

    ``activations`` A(x) and ``delta`` ΔA = A(x) − A(x′) [B, K, h, w] (so A(x′) = activations − delta);
    ``path_gradients`` ḡ [B, K, h, w]; ``importance`` φ [B, K];
    ``saliency`` ReLU(Σ_k φ_k ΔA_k) [B, h, w] (before upsampling); ``targets`` [B]; ``score`` F_c(A(x)) and
    ``reference_score`` F_c(A(x′)) [B], so ``completeness_gap`` = Σ_k φ_k − (score − reference_score).
    """

    activations: torch.Tensor
    delta: torch.Tensor
    path_gradients: torch.Tensor
    importance: torch.Tensor
    saliency: torch.Tensor
    targets: torch.Tensor
    score: torch.Tensor
    reference_score: torch.Tensor

    @property
    def completeness_gap(self) -> torch.Tensor:
        return self.importance.sum(dim=1) - (self.score - self.reference_score)


class AFMI(Explainer):
    """A-FMI (reconstructed): feature-map importance of the difference from a reference image.

    Paper: A. Zhang, X. Wang, C. Fang, J. Shi, T.-S. Chua, Z. Chen, "A-FMI: Learning Attributions from Deep
    Networks via Feature Map Importance", arXiv:2104.05527 (2021). The abstract says that feature map
    importance (FMI) refines each feature map's contribution, and that A-FMI couples the image with a
    reference image and assigns FMI to the difference from the reference at feature-map granularity, to
    address gradient saturation; it claims faithfulness, insensitivity to the choice of reference and class
    discriminability.

    Our equations. With A the explained layer's activations, F the rest of the network (``logits = F(A)``,
    derived by :func:`camrepro.methods.tail.extract_tail`), c the target class and x′ the reference image:

        ΔA = A(x) − A(x′)
        ḡ_kij = ∫₀¹ ∂F_c/∂A_kij (A(x′) + α ΔA) dα          (path average in feature space)
        φ_k = Σ_ij ΔA_kij · ḡ_kij                           (feature-map importance)
        map = ReLU(Σ_k φ_k ΔA_k), upsampled bilinearly and min-max normalised per image.

    Completeness: Σ_k φ_k = F_c(A(x)) − F_c(A(x′)) exactly for the integral (fundamental theorem of calculus
    along the straight path); the quadrature below approaches it as ``steps`` grows (error O(1/steps²) for a
    smooth tail, O(1/steps) across ReLU kinks). For a linear tail (pool + fully connected) ḡ is constant and
    one step is exact: φ_k = w_ck · Σ_ij ΔA_kij / (h·w).

    Parameters: ``reference`` — ``"zeros"``, ``"mean"``, ``"blur"`` (σ = ``blur_sigma`` px), ``"noise"``
    (uniform, seeded by ``noise_seed``) or an image tensor, see :mod:`camrepro.methods.references`; ``steps``
    and ``rule`` — the quadrature of the path average (:func:`path_nodes`: midpoint rule by default, m nodes;
    trapezoid, m + 1 nodes); ``batch_size`` — path points per tail pass; ``tail`` — the module F, when it
    cannot be derived automatically (it is checked against the model's logits at the first call);
    ``check_range=False`` — for a model that takes another input range, with the references ``"zeros"`` (the
    zero of the model's input) and ``"mean"`` only (the others are built in [0, 1] pixel space).

    Cost: one forward pass of the images and one of the references (run together as one batch of 2B, or of
    B + 1 when every image of the batch has the same reference: ``"zeros"``, ``"noise"``, one given photo), plus
    ``steps`` (``steps + 1`` for the trapezoid) tail forward and backward passes per image, stacked over
    images and path positions and chunked by ``batch_size``. Nothing is back-propagated below the explained
    layer.

    Example:
        >>> afmi = AFMI(net, layer="features.18", reference="blur", steps=16)
        >>> maps = afmi(images)                # [B, H, W] in [0, 1]
        >>> phi = afmi.weights(images)         # [B, K] feature-map importance φ

    Deviations from the paper: the whole method is a reconstruction from the abstract. Choices the paper may
    have made differently (its text was not available to us): the path (a straight line
    in feature space, not in pixel space as integrated gradients); the quadrature (midpoint rule); the target
    score (the pre-softmax logit); the map combining φ with ΔA rather than with A(x); ReLU on the map; the
    references offered; bilinear upsampling and min-max normalisation. The abstract also introduces a
    property called "Strong Relevance" for selecting attribution features; its definition is not in the
    abstract, so no feature selection of that kind is made here: every channel of the layer takes part.
    """

    name = "a-fmi"
    paper = "Zhang et al., arXiv:2104.05527 (2021), reconstructed from the abstract"
    needs_gradients = True
    has_weights = True
    forward_passes = ("1 forward per image + 1 per reference (once per batch when shared) "
                      "+ steps × tail (forward + backward)")
    range_free = True  # check_range=False accepted with the references "zeros" and "mean" (see Explainer)

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None, *,
                 reference: ReferenceLike = "zeros", steps: int = 16, rule: str = "midpoint",
                 blur_sigma: float = DEFAULT_BLUR_SIGMA, noise_seed: int = 0, batch_size: int = 64,
                 tail: nn.Module | None = None, check_range: bool = True, precision: str = "float32"):
        super().__init__(model, layer, check_range=check_range, precision=precision)
        self.reference = check_reference(reference, check_range=check_range)
        self.steps = check_positive_int(steps, "steps")
        if rule not in RULES:
            raise ValueError(f"unknown quadrature rule {rule!r}; expected one of {RULES}")
        self.rule = rule
        self.blur_sigma = check_blur_sigma(blur_sigma)
        self.noise_seed = check_noise_seed(noise_seed)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if tail is not None and not isinstance(tail, nn.Module):
            raise TypeError(f"tail must be an nn.Module mapping the layer's output to the logits, "
                            f"got {type(tail).__name__}")
        self._tail = tail
        self._tail_checked = False

    @property
    def tail(self) -> nn.Module:
        """The module F after the explained layer (derived from the model on first use unless given)."""
        if self._tail is None:
            self._tail = extract_tail(self.model, self.layer_name)
        return self._tail

    def references(self, images: torch.Tensor) -> torch.Tensor:
        """The reference images x′ [B, C, H, W] this instance uses for ``images``."""
        return make_reference(check_images(images, unit_range=self.check_range), self.reference, blur_sigma=self.blur_sigma,
                              noise_seed=self.noise_seed)

    def attribute(self, images: torch.Tensor, targets: TargetsLike = None) -> AFMIAttribution:
        """ΔA, ḡ, φ, the low-resolution map and the scores at x and x′ (see :class:`AFMIAttribution`)."""
        images, parsed = self._validate(images, targets)
        with self._scope(images):
            return self._attribute(images, parsed)

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor | None) -> AFMIAttribution:
        batch = images.shape[0]
        reference = self.references(images)
        # A reference the whole batch shares (zeros, noise, one given photo) is forwarded once, not B times.
        shared = batch > 1 and bool(torch.equal(reference, reference[:1].expand_as(reference)))
        logits, acts = self._capture(torch.cat([images, reference[:1] if shared else reference]), grad=False)
        tail = self.tail
        if not self._tail_checked:
            check_tail(tail, acts, logits, f"A-FMI at {self.layer_name!r}")
            self._tail_checked = True
        if shared:
            logits = torch.cat([logits[:batch], logits[batch:].expand(batch, -1)])
            acts = torch.cat([acts[:batch], acts[batch:].expand(batch, -1, -1, -1)])
        targets = self._resolve_targets(targets, logits[:batch])
        end, start = acts[:batch], acts[batch:]
        grads = path_averaged_gradients(tail, start, end, targets, steps=self.steps, rule=self.rule,
                                        batch_size=self.batch_size)
        delta = end - start
        importance = (delta * grads).sum(dim=(2, 3))
        saliency = torch.relu(torch.einsum("bk,bkhw->bhw", importance, delta))
        return AFMIAttribution(
            activations=end, delta=delta, path_gradients=grads, importance=importance, saliency=saliency,
            targets=targets, score=target_scores(logits[:batch], targets).detach(),
            reference_score=target_scores(logits[batch:], targets).detach())

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        result = self._attribute(images, targets)
        return Explanation(saliency=result.saliency, targets=result.targets, weights=result.importance)
