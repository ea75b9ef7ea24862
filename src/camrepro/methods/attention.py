"""The attention map a trainable attention network computes in its forward pass (LFI-CAM, ABN)."""

from __future__ import annotations

import torch

from camrepro.methods.base import Explainer, Explanation
from camrepro.models.attention_output import AttentionOutput


class AttentionMap(Explainer):
    """The network's own attention map as an explanation, through the standard API.

    Paper: H. Lee, J. Park, M. Oh, N. Kwak, "LFI-CAM: Learning Feature Importance for Better Visual
    Explanation", ICCV 2021; H. Fukui et al., "Attention Branch Network", CVPR 2019.

    For :class:`camrepro.models.lficam.LFICAMNet` it is M = minmax(ReLU(Σ_k w_k A_k)) with the Feature
    Importance Network's weights w (Lee et al., ICCV 2021, Sec. 3); for :class:`camrepro.models.abn.ABNNet`
    the sigmoid map of the attention branch (Fukui et al., CVPR 2019, Sec. 3.1). ``explain()`` returns the
    map at the feature maps' resolution exactly as the network computed it (and, for LFI-CAM, the FIN
    weights); calling the explainer upsamples and min-max normalises it like every other method.

    Cost: one forward pass, no gradient.

    Example:
        >>> maps = AttentionMap(lficam_net)(images)          # [B, H, W] in [0, 1]

    Deviations from the paper: both networks compute one attention map per image, whatever the class; ``targets`` is
    validated and recorded (None: the predicted class) but does not change the map.
    """

    name = "attention"
    paper = "Lee et al., ICCV 2021 (LFI-CAM); Fukui et al., CVPR 2019 (ABN)"
    needs_layer = False
    forward_passes = "1 forward"
    range_free = True  # check_range=False accepted (see Explainer)

    def _explain(self, images: torch.Tensor, targets: torch.Tensor | None) -> Explanation:
        with torch.no_grad():
            output = self.model(images)
        if not isinstance(output, AttentionOutput):
            raise TypeError(f"{type(self.model).__name__} returns {type(output).__name__}; the 'attention' "
                            "method explains networks whose forward returns an AttentionOutput (LFICAMNet, "
                            "ABNNet)")
        targets = self._resolve_targets(targets, output.logits)
        return Explanation(saliency=output.attention, targets=targets, weights=output.weights)
