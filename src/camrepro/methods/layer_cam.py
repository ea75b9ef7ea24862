"""LayerCAM (Jiang et al., IEEE TIP 2021)."""

from __future__ import annotations

import torch

from camrepro.methods.base import Explainer, Explanation, target_scores


class LayerCAM(Explainer):
    """LayerCAM: every location of every channel weighted by its own positive gradient.

    Paper: P.-T. Jiang, C.-B. Zhang, Q. Hou, M.-M. Cheng, Y. Wei, "LayerCAM: Exploring Hierarchical Class
    Activation Maps for Localization", IEEE Transactions on Image Processing 30, 2021, Sec. III:
    ŵ_kij^c = ReLU(∂y^c/∂A_kij),  Â_kij = ŵ_kij^c · A_kij,  M^c = ReLU(Σ_k Â_k).

    There are no channel coefficients (``has_weights`` is False): the weight is per location.

    Cost: one forward pass and one backward pass through the tail only (the backward stops at the layer).

    Example:
        >>> cam = LayerCAM(net, layer="features.18")
        >>> maps = cam(images)            # [B, H, W] in [0, 1]

    Deviations from the paper: none for one layer. The paper also fuses maps of several layers (with a
    scaling of shallow layers); this class explains one layer, as every method of the package does.
    """

    name = "layer-cam"
    paper = "Jiang et al., IEEE TIP 2021"
    needs_gradients = True
    has_weights = False
    forward_passes = "1 forward + 1 backward (tail)"
    range_free = True  # check_range=False accepted (see Explainer)

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        logits, acts = self._capture(images, grad=True)
        targets = self._resolve_targets(targets, logits)
        (g,) = torch.autograd.grad(target_scores(logits, targets).sum(), acts)
        saliency = torch.relu((torch.relu(g) * acts.detach()).sum(dim=1))
        return Explanation(saliency=saliency, targets=targets)
