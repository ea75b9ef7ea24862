"""Grad-CAM (Selvaraju et al., ICCV 2017)."""

from __future__ import annotations

import torch

from camrepro.methods.base import ChannelCAM, target_scores


class GradCAM(ChannelCAM):
    """Grad-CAM: channel weights are the spatially averaged gradients of the target logit.

    Paper: R. R. Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017, Eq. (1)-(2):  α_k^c = (1/Z) Σ_ij ∂y^c/∂A^k_ij,  L^c = ReLU(Σ_k α_k^c A^k).

    Cost: one forward pass and one backward pass through the tail only (the backward stops at the layer).

    Example:
        >>> cam = GradCAM(net, layer="features.18")
        >>> maps = cam(images)            # [B, H, W] in [0, 1]

    Deviations from the paper: none. y^c is the pre-softmax logit, as in the paper.
    """

    name = "grad-cam"
    paper = "Selvaraju et al., ICCV 2017"
    needs_gradients = True
    forward_passes = "1 forward + 1 backward (tail)"
    range_free = True  # check_range=False accepted (see Explainer)

    def _channel_weights(self, images, acts, logits, targets):
        (grads,) = torch.autograd.grad(target_scores(logits, targets).sum(), acts)
        return grads.mean(dim=(2, 3))
