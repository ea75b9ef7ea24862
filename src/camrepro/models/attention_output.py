"""What the attention networks (LFI-CAM, ABN) return, and a logits-only view of them for the metrics.

The metrics and the CAM methods call ``model(images)`` and expect logits; :class:`LogitsOnly` wraps an
attention network so that it can be evaluated, masked (it keeps the network's ``Normalize`` module) and
explained like any classifier.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class AttentionOutput(NamedTuple):
    """The forward pass of an attention network.

    ``logits`` [B, classes] (the classifier's, i.e. the perception branch's for ABN); ``attention`` [B, h, w]
    in [0, 1] at the resolution of the feature maps it weights; ``weights`` [B, K] the channel importance
    (LFI-CAM's FIN output; None for ABN); ``aux_logits`` [B, classes] of a branch with its own loss (ABN's
    attention branch; None for LFI-CAM).
    """

    logits: torch.Tensor
    attention: torch.Tensor
    weights: torch.Tensor | None = None
    aux_logits: torch.Tensor | None = None


def logits_of(output: torch.Tensor | AttentionOutput) -> torch.Tensor:
    """The logits of a forward pass, whether the network returns a tensor or an :class:`AttentionOutput`."""
    if isinstance(output, AttentionOutput):
        return output.logits
    if isinstance(output, torch.Tensor):
        return output
    raise TypeError(f"a classifier must return a logits tensor or an AttentionOutput, "
                    f"got {type(output).__name__}")


class LogitsOnly(nn.Module):
    """``LogitsOnly(net)(x)`` is ``net(x).logits``: an attention network seen as a plain classifier.

    The wrapped network is a submodule, so ``find_normalize`` and layer names (prefixed ``net.``) still work.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return logits_of(self.net(images))
