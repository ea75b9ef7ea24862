"""Opti-CAM (Zhang, Torres, Sicre, Avrithis, Ayache, CVIU 248, 2024): CAM weights optimised per image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from camrepro.methods.base import EPS, Explainer, Explanation, inference_scope, target_scores, upsample
from camrepro.methods.validation import (
    TargetsLike, check_fits_model, check_images, check_target_range, parse_targets,
)
from camrepro.models.masking import SPACES, masked_forward
from camrepro.progress import progress
from camrepro.models.folded import folded_forward
from camrepro.tensors import channels_last_unless_refused, forward_channels_last

OBJECTIVES = ("mask", "diff")
NORMALIZATIONS = ("range", "max", "sigmoid")


def normalize_mask(maps: torch.Tensor, normalization: str = "range", eps: float = EPS) -> torch.Tensor:
    """The normalisation n(·) that turns an upsampled saliency map [B, H, W] into a mask in [0, 1].

    - ``"range"``: (S − min S) / (max S − min S) per image (the paper's Eq. (4), its default);
    - ``"max"``: S / max S per image;
    - ``"sigmoid"``: 1 / (1 + exp(−S)).

    The denominators are floored at ``eps``, so a constant map gives zeros (``range``) or a constant
    (``max``) instead of NaN; the floor is below any real range of a network's activations. ``range`` and
    ``max`` assume S ≥ 0, which holds for Opti-CAM's maps (non-negative weights on rectified feature maps).
    """
    if maps.dim() < 2:
        raise ValueError(f"maps must have shape [B, H, W], got {tuple(maps.shape)}")
    if normalization == "sigmoid":
        return torch.sigmoid(maps)
    shape = (-1,) + (1,) * (maps.dim() - 1)
    flat = maps.flatten(1)
    hi = flat.max(dim=1).values.view(shape)
    if normalization == "range":
        lo = flat.min(dim=1).values.view(shape)
        return (maps - lo) / (hi - lo).clamp_min(eps)
    if normalization == "max":
        return maps / hi.clamp_min(eps)
    raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")


def mask_gradient(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, targets: TargetsLike,
                  space: str = "pixel") -> torch.Tensor:
    """∂ Σ_b y_{c_b}(x_b ⊙ m_b) / ∂m_b, [B, H, W]: one forward and one backward pass of the masked batch.

    This is the unit of Opti-CAM's cost: each iteration is exactly this pass (plus arithmetic on a map of the
    layer's resolution), so timing ``iterations`` calls of it gives the floor that Opti-CAM's time is compared
    with. Runs like Opti-CAM, in eval mode with the parameters frozen (their ``.grad`` is never written).
    """
    images = check_fits_model(model, check_images(images))
    if not isinstance(masks, torch.Tensor) or masks.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"masks must be a tensor [B, H, W] matching images {tuple(images.shape)}, got "
                         f"{tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__}")
    parsed = parse_targets(targets, images.shape[0], images.device)
    if parsed is None:
        raise ValueError("mask_gradient needs explicit targets (one class per image)")
    masks = masks.detach().to(images.dtype).requires_grad_(True)
    with inference_scope(model), torch.enable_grad():
        # the network and layout Opti-CAM's iterations use: the folded copy in pixel space, channels-last on the CPU
        net = folded_forward(model, images) if space == "pixel" else model
        logits = forward_channels_last(lambda x: masked_forward(net, x, masks, space), images, remember=model)
        score = target_scores(logits, check_target_range(parsed, logits.shape[1])).sum()
        (grad,) = torch.autograd.grad(score, masks)
    return grad


@dataclass
class OptiCAMExplanation(Explanation):
    """An :class:`Explanation` with the optimisation's record.

    ``objective``: [B, T + 1], F_c(x; u_t) for t = 0 … T, the quantity maximised (the masked target logit for
    ``"mask"``, −|y_c(x) − y_c(x ⊙ S)| for ``"diff"``), evaluated at the weights after t Adam steps; column T
    is the objective of the returned map. An image stopped early by ``early_stop`` holds NaN after its
    last evaluation, which is the objective of the map returned for it.
    ``steps``: [B] the number of Adam steps each image took. ``snapshots``: {t: low-resolution saliency
    [B, h, w] after t steps} for the iterations asked for in ``OptiCAM(snapshots=...)``.
    ``best_objective`` [B] and ``best_step`` [B]: the highest objective of the record and the step t at which
    it was reached. Adam at a constant learning rate does not climb monotonically, so the returned map (the
    paper's: the last iterate) can score below an earlier one; ``final_objective`` [B] is the objective of
    the returned map, and ``best_objective − final_objective`` is what the last iterate gives away.
    """

    objective: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    steps: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    best_objective: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    best_step: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))

    @property
    def final_objective(self) -> torch.Tensor:
        """[B] the objective of the returned map: the last evaluated entry of each row of ``objective``."""
        if self.objective.numel() == 0:
            return self.objective.new_empty(0)
        evaluated = ~torch.isnan(self.objective)
        last = evaluated.shape[1] - 1 - evaluated.flip(1).to(torch.uint8).argmax(dim=1)
        return self.objective.gather(1, last[:, None]).squeeze(1)


class OptiCAM(Explainer):
    """Opti-CAM: the CAM whose channel weights maximise the target logit of the image masked by its own map.

    Paper: H. Zhang, F. Torres, R. Sicre, Y. Avrithis, S. Ayache, "Opti-CAM: Optimizing saliency maps for
    interpretability", Computer Vision and Image Understanding 248 (2024) 104101, Sec. 3:

    - Eq. (8): S_ℓ(x; u) = h(Σ_k softmax(u)_k A^k_ℓ), with u ∈ R^K one variable per channel;
    - Eq. (10): F_c(x; u) = g_c(f(x ⊙ n(up(S_ℓ(x; u))))), g_c the logit of class c, up bilinear upsampling
      to the input size, n the normalisation of Eq. (4) (min-max, "Range");
    - Eq. (9): u* = argmax_u F_c(x; u), found with Adam; the explanation is S_ℓ(x; u*) (Eq. (11)).

    The feature maps A^k are computed once, in one forward pass, and held fixed; each iteration is one forward
    and one backward pass of the masked batch, differentiated with respect to u only (``torch.autograd.grad``;
    no graph survives an iteration and the model's ``.grad`` fields are never written). The loss is a sum of
    per-image terms and Adam's state is element-wise, so in exact arithmetic each image's u follows the
    trajectory it would follow alone. In float64 on one thread a batch gives the maps of a loop over its images
    (tested to 1e-9 on MobileNetV2 ``features.18``; measured equal to the bit on a 2-core Xeon); with several
    intra-op threads the kernels split their sums differently for a batch and for one image, and the maps agree
    to ~1e-8 after 10 steps (two 64² photos, two threads). In float32 it does
    not: the network's batched and single-image passes round differently (MobileNetV2's logits by ~5e-6), and
    Adam's step m/(√v + ε) does not shrink with the gradient, so a channel whose gradient is mostly
    cancellation moves by a full learning-rate step whose sign is set by rounding; over 100 steps the
    trajectories part. Measured on the same four photos: maps differ by up to 0.34 (one photo agrees
    exactly), objectives by up to 0.9 on values of 19-35 (3 %); which of the two is higher varies. Run the
    model in float64 (``net.double()``, ``images.double()``) when maps must not depend on the batch.

    Parameters (defaults are the paper's):
        iterations: Adam steps (100).
        lr: Adam learning rate (0.1; betas and eps are torch's defaults, as in the official code).
        objective: ``"mask"`` maximises y_c(x ⊙ S) (the code minimises Σ_b y_c(x_b) − y_c(x_b ⊙ S_b), which has
            the same gradient); ``"diff"`` minimises |y_c(x) − y_c(x ⊙ S)| (Table 6's "Diff").
        normalization: ``"range"``, ``"max"`` or ``"sigmoid"`` (Table 6); see :func:`normalize_mask`.
        space: where the mask multiplies the image: ``"pixel"`` (the [0, 1] image, before the network's
            mean/std normalisation: masked pixels are black; the paper's protocol) or ``"normalized"`` (after
            it: masked pixels take the dataset mean; the protocol-sensitivity experiments of App. H).
        init: the initial value of every u_k (0.5, i.e. uniform weights 1/K).
        early_stop: None (default, off) or a check interval m: every m steps, an image whose objective is lower
            than at the previous check stops, keeping the weights just evaluated. The official code applies
            this rule to the loss summed over the batch, every ``iterations // 10`` steps; here it is applied per
            image, so stopping one image never changes another's map.
        snapshots: iterations t (0 ≤ t ≤ ``iterations``) at which to keep the low-resolution map, for the
            "AG against iterations" study: with a constant learning rate, the map after t steps of a long run
            is the map of a run of t iterations, so one run gives every point of the curve.

    ``__call__`` returns the mask the objective was optimised with, n(up(S_ℓ(x; u*))): for ``"range"`` this is
    the per-image min-max map of every other method; for ``"max"`` it is S / max S, and for ``"sigmoid"`` it
    is σ(S) (in [0.5, 1) since S ≥ 0), both in [0, 1]. ``weights()`` returns softmax(u*) [B, K].
    :meth:`explain` returns an :class:`OptiCAMExplanation` with the objective's trajectory, the objective of
    the returned (last) iterate (``final_objective``) and the best one met on the way (``best_objective``,
    ``best_step``).

    Cost: 1 forward pass (feature maps, original logits) + ``iterations`` × (forward + backward of the masked
    batch through the whole network) + 1 forward pass (the objective of the returned map). The iterations run
    through the model's folded copy in pixel space (:func:`camrepro.models.folded.folded_forward`) on
    channels-last inputs on the CPU: 0.64× (MobileNetV2) and 0.69× (EfficientNet-Lite0) the time of a
    masked forward and backward of the model itself at batch 8, the same gradient up to rounding (which 100
    Adam steps amplify as the float32 note above says).

    Example:
        >>> cam = OptiCAM(net, layer="features.18")
        >>> maps = cam(images)                    # [B, H, W] in [0, 1], predicted classes
        >>> record = cam.explain(images, targets)
        >>> record.objective[:, -1] >= record.objective[:, 0]

    Deviations from the paper and the official code:
        - the saliency is Σ_k softmax(u)_k ReLU(A^k), as in the official code; Eq. (8) writes
          ReLU(Σ_k softmax(u)_k A^k). The two agree whenever A ≥ 0, i.e. after any ReLU/ReLU6 layer (every
          default layer of the package);
        - normalisations floor their denominator at 1e-8 (no NaN for a constant map);
        - the early stop (off by default) is per image, see ``early_stop``;
        - the target defaults to the predicted class; the paper's main tables use the ground truth (its Table
          A.9 reports the predicted-class variant).
    """

    name = "opti-cam"
    paper = "Zhang, Torres, Sicre, Avrithis and Ayache, CVIU 248 (2024) 104101"
    needs_gradients = True
    has_weights = True
    forward_passes = "2 forward + iterations × (forward + backward) of the masked batch"
    autocast_applies = False
    autocast_refusal = ("100 Adam steps amplify rounding (see the float32 note in the class docstring); in "
                        "bfloat16 its maps correlate only 0.987-0.996 with the float32 maps after 10 steps")

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None, *, iterations: int = 100,
                 lr: float = 0.1, objective: str = "mask", normalization: str = "range", space: str = "pixel",
                 init: float = 0.5, early_stop: int | None = None, snapshots: Sequence[int] = (),
                 check_range: bool = True, precision: str = "float32"):
        # masks pixels: check_range=False is refused
        super().__init__(model, layer, check_range=check_range, precision=precision)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init):
            raise ValueError(f"init must be a finite number, got {init!r}")
        choices = (("objective", objective, OBJECTIVES), ("normalization", normalization, NORMALIZATIONS),
                   ("space", space, SPACES))
        for option, value, allowed in choices:
            if not isinstance(value, str) or value.lower() not in allowed:
                raise ValueError(f"unknown {option} {value!r}; expected one of {allowed}")
        if early_stop is not None and (isinstance(early_stop, bool) or not isinstance(early_stop, int)
                                       or early_stop < 1):
            raise ValueError("early_stop must be None (off) or a positive int (the check interval), "
                             f"got {early_stop!r}")
        if isinstance(snapshots, (str, bytes)) or not isinstance(snapshots, Sequence):
            raise TypeError("snapshots must be a sequence of iteration numbers, "
                            f"got {type(snapshots).__name__}")
        for t in snapshots:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= iterations:
                raise ValueError(f"snapshot iterations must be ints in [0, {iterations}], got {t!r}")
        self.iterations = iterations
        self.lr = float(lr)
        self.objective = objective.lower()
        self.normalization = normalization.lower()
        self.space = space.lower()
        self.init = float(init)
        self.early_stop = early_stop
        self.snapshots = tuple(sorted(set(snapshots)))

    def __repr__(self) -> str:
        return (f"OptiCAM(model={type(self.model).__name__}, layer={self.layer_name!r}, "
                f"iterations={self.iterations}, lr={self.lr}, objective={self.objective!r}, "
                f"normalization={self.normalization!r}, space={self.space!r})")

    # -- the public verbs ------------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, targets: TargetsLike = None) -> torch.Tensor:
        """The optimised masks n(up(S_ℓ(x; u*))) [B, H, W] in [0, 1] (``targets`` None: predicted classes)."""
        explanation = self.explain(images, targets)
        return self.mask(explanation.saliency.detach(), tuple(images.shape[-2:]))

    def mask(self, saliency: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """n(up(S)): low-resolution saliency [B, h, w] → the mask [B, H, W] that multiplies the image."""
        return normalize_mask(upsample(saliency, size), self.normalization)

    # -- the optimisation --------------------------------------------------------------------------------
    def _saliency(self, u: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Σ_k softmax(u)_k ReLU(A^k), [B, h, w]; ``features`` are already rectified."""
        return torch.einsum("bk,bkhw->bhw", torch.softmax(u, dim=1), features)

    def _objective(self, net: nn.Module, u: torch.Tensor, images: torch.Tensor, features: torch.Tensor,
                   original: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """F_c(x; u) per image [B]: the quantity maximised (``net``: the model or its folded copy)."""
        masks = self.mask(self._saliency(u, features), tuple(images.shape[-2:]))
        masked = target_scores(masked_forward(net, images, masks, self.space), targets)
        if self.objective == "mask":
            return masked
        return -(original - masked).abs()

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> OptiCAMExplanation:
        logits, acts = self._capture(images, grad=False)
        # every iteration's forward and backward pass on channels-last images on the CPU, through the model's
        # folded copy in pixel space (fewer passes over the activations; the same values up to rounding: see
        # the float32 note above on what rounding does to 100 Adam steps)
        images = channels_last_unless_refused(images, self.model)
        net = folded_forward(self.model, images) if self.space == "pixel" else self.model
        targets = self._resolve_targets(targets, logits)
        features = torch.relu(acts.detach())
        original = target_scores(logits, targets).detach()
        batch, channels = features.shape[:2]
        total = self.iterations

        u = torch.full((batch, channels), self.init, device=images.device, dtype=features.dtype,
                       requires_grad=True)
        optimizer = torch.optim.Adam([u], lr=self.lr)
        # The record stays on the device in the features' dtype (float64 is not available on every device).
        objective = torch.full((batch, total + 1), float("nan"), dtype=features.dtype, device=images.device)
        steps = torch.zeros(batch, dtype=torch.long, device=images.device)
        active = torch.ones(batch, dtype=torch.bool, device=images.device)
        final_u = u.detach().clone()
        last_check = torch.full((batch,), -math.inf, dtype=features.dtype, device=images.device)
        snapshots: dict[int, torch.Tensor] = {}
        if 0 in self.snapshots:
            snapshots[0] = self._saliency(final_u, features)

        # ``index`` lists the images still optimised; while it is all of them (always, without early stop) the
        # tensors are used whole, which spares a copy of the batch and a device synchronisation per iteration.
        index: torch.Tensor | None = None

        def pick(z: torch.Tensor) -> torch.Tensor:
            return z if index is None else z[index]

        for t in progress(range(total), total=total, desc=f"{self.name} iterations", unit="step"):
            with torch.enable_grad():
                value = self._objective(net, pick(u), pick(images), pick(features), pick(original),
                                        pick(targets))
                (grad,) = torch.autograd.grad(-value.sum(), u)
            value = value.detach()
            objective[slice(None) if index is None else index, t] = value
            if self.early_stop is not None and t % self.early_stop == 0:
                rows = torch.arange(batch, device=images.device) if index is None else index
                worse = value < last_check[rows]
                last_check[rows] = value
                if bool(worse.any()):
                    stopped = rows[worse]
                    final_u[stopped] = u.detach()[stopped]
                    active[stopped] = False
                    grad[stopped] = 0.0
                    index = active.nonzero().squeeze(1)
                    if index.numel() == 0:
                        break
            u.grad = grad
            optimizer.step()
            u.grad = None
            # A stopped image's u keeps drifting with Adam's momentum; its weights were saved in final_u.
            if index is None:
                final_u.copy_(u.detach())
                steps += 1
            else:
                final_u[index] = u.detach()[index]
                steps[index] += 1
            if t + 1 in self.snapshots:
                snapshots[t + 1] = self._saliency(final_u, features)

        if index is None or index.numel():
            with torch.no_grad():
                objective[slice(None) if index is None else index, total] = self._objective(
                    net, pick(final_u), pick(images), pick(features), pick(original), pick(targets))
        for t in self.snapshots:
            snapshots.setdefault(t, self._saliency(final_u, features))
        weights = torch.softmax(final_u, dim=1)
        record = objective.cpu()
        best_objective, best_step = record.nan_to_num(nan=-math.inf).max(dim=1)
        return OptiCAMExplanation(saliency=self._saliency(final_u, features), targets=targets, weights=weights,
                                  objective=record, steps=steps.cpu(), snapshots=snapshots,
                                  best_objective=best_objective, best_step=best_step)
