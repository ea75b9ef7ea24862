"""Fake-CAM (Poppi et al., CVPR Workshops 2021): a map that explains nothing, to expose flawed metrics."""

from __future__ import annotations

from typing import ClassVar

import torch

from camrepro.methods.base import Explainer, Explanation


class FakeCAM(Explainer):
    """Fake-CAM: 1 at every pixel except the top-left one, which is 0; the same for every image and class.

    Paper: S. Poppi, M. Cornia, L. Baraldi, R. Cucchiara, "Revisiting the Evaluation of Class Activation
    Mapping for Explainability: A Novel Metric and Experimental Analysis", CVPR Workshops 2021, Sec. 3:
    masking an image with this map leaves it almost unchanged, so it scores a near-perfect Average Drop and
    a high Average Increase without looking at the network. The Opti-CAM paper uses it to motivate Average
    Gain.

    The map is built at the input resolution, so ``__call__`` returns it exactly: the per-image min-max
    normalisation maps {0, 1} onto itself.

    Cost: zero passes when ``targets`` are given. The map ignores the network; with ``targets=None`` one
    forward pass names each image's predicted class in :attr:`Explanation.targets`. Because no pass runs when
    targets are given, their range cannot be checked against the number of classes
    (``validates_target_range`` is False); their type and length are checked as for every method.

    Example:
        >>> maps = FakeCAM(net)(images, targets)   # [B, H, W]: ones, with maps[:, 0, 0] == 0

    Deviations from the paper: none; the zero pixel is the top-left one.
    """

    name = "fake-cam"
    paper = "Poppi et al., CVPR Workshops 2021"
    needs_layer = False
    needs_gradients = False
    has_weights = False
    forward_passes = "0"
    range_free = True  # check_range=False accepted (see Explainer)
    validates_target_range: ClassVar[bool] = False

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        if targets is None:
            with torch.no_grad():
                targets = self._resolve_targets(None, self._forward(images))
        b, _, h, w = images.shape
        saliency = torch.ones(b, h, w, device=images.device, dtype=images.dtype)
        saliency[:, 0, 0] = 0.0
        return Explanation(saliency=saliency, targets=targets)
