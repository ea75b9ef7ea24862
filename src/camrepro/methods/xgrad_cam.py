"""XGrad-CAM (Fu et al., BMVC 2020)."""

from __future__ import annotations

import torch

from camrepro.methods.base import ChannelCAM, target_scores


class XGradCAM(ChannelCAM):
    """XGrad-CAM: gradients averaged with the activation map itself as the spatial weighting.

    Paper: R. Fu, Q. Hu, X. Dong, Y. Guo, Y. Gao, B. Li, "Axiom-based Grad-CAM: Towards Accurate
    Visualization and Explanation of CNNs", BMVC 2020, Sec. 3 (the weights that best satisfy the Sensitivity
    and Conservation axioms):  w_k^c = Σ_ij (A_kij / Σ_ab A_kab) · ∂S^c/∂A_kij,   map = ReLU(Σ_k w_k^c A_k).

    A channel whose activations sum to zero gets weight 0 (the formula is 0/0 there).

    Cost: one forward pass and one backward pass through the tail only (the backward stops at the layer).

    Example:
        >>> cam = XGradCAM(net, layer="features.18")
        >>> maps = cam(images)            # [B, H, W] in [0, 1]

    Deviations from the paper: none; S^c is the pre-softmax logit, as in the paper.
    """

    name = "xgrad-cam"
    paper = "Fu et al., BMVC 2020"
    needs_gradients = True
    forward_passes = "1 forward + 1 backward (tail)"
    range_free = True  # check_range=False accepted (see Explainer)

    def _channel_weights(self, images, acts, logits, targets):
        (g,) = torch.autograd.grad(target_scores(logits, targets).sum(), acts)
        a = acts.detach()
        total = a.sum(dim=(2, 3))
        weighted = (a * g).sum(dim=(2, 3))
        return torch.where(
            total != 0, weighted / torch.where(total != 0, total, 1.0), torch.zeros_like(total)
        )
