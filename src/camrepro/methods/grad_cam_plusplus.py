"""Grad-CAM++ (Chattopadhay et al., WACV 2018)."""

from __future__ import annotations

import torch

from camrepro.methods.base import ChannelCAM, target_scores


class GradCAMPlusPlus(ChannelCAM):
    """Grad-CAM++: channel weights are positive gradients weighted per location by α from higher derivatives.

    Paper: A. Chattopadhay, A. Sarkar, P. Howlader, V. N. Balasubramanian, "Grad-CAM++: Generalized
    Gradient-Based Visual Explanations for Deep Convolutional Networks", WACV 2018.
    Eq. (7)-(10): w_k^c = Σ_ij α_kij^c ReLU(∂Y^c/∂A_kij), with α from the second and third derivatives.
    Eq. (17)-(19): taking Y^c = exp(S^c) for a network whose score S^c is piecewise linear in A (ReLU
    networks), ∂²Y/∂A² = Y g² and ∂³Y/∂A³ = Y g³ with g = ∂S^c/∂A_kij, so

        α_kij = g² / (2 g² + Σ_ab A_kab · g³),      w_k = Σ_ij α_kij · ReLU(g_kij).

    α is set to 0 where its denominator is 0 (there g = 0, so the location contributes nothing either way).
    Map: ReLU(Σ_k w_k A_k).

    Cost: one forward pass and one backward pass through the tail only (the backward stops at the layer).

    Example:
        >>> cam = GradCAMPlusPlus(net, layer="features.18")
        >>> maps = cam(images)            # [B, H, W] in [0, 1]

    Deviations from the paper: the weights are the paper's divided by exp(S^c), a positive factor per image
    that cancels in the min-max normalised map and would overflow in float32 for logits above ~88 (the public
    implementations drop it too). The higher derivatives are the closed form of Eq. (19), exact only where the
    tail is piecewise linear (second derivatives of S^c zero), as the paper assumes.
    """

    name = "grad-cam++"
    paper = "Chattopadhay et al., WACV 2018"
    needs_gradients = True
    forward_passes = "1 forward + 1 backward (tail)"
    range_free = True  # check_range=False accepted (see Explainer)

    def _channel_weights(self, images, acts, logits, targets):
        (g,) = torch.autograd.grad(target_scores(logits, targets).sum(), acts)
        a = acts.detach()
        g2 = g * g
        denominator = 2.0 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g
        alpha = torch.where(
            denominator != 0, g2 / torch.where(denominator != 0, denominator, 1.0), torch.zeros_like(g2)
        )
        return (alpha * torch.relu(g)).sum(dim=(2, 3))
