"""Attention Branch Network (ABN), the trainable-attention baseline LFI-CAM is compared with.

Paper: H. Fukui, T. Hirakawa, T. Yamashita, H. Fujiyoshi, "Attention Branch Network: Learning of Attention
Mechanism for Visual Explanation", CVPR 2019, Sec. 3 (Fig. 2). A ResNet is split into a *feature extractor*
g (stem and every stage but the last), an *attention branch* and a *perception branch* (the last stage, pool
and fc):

* attention branch: a residual stage like the last one but with stride 1 (so its maps keep g's resolution),
  batch norm, a 1×1 convolution to C class maps, batch norm and ReLU; then
  - class scores: a 1×1 convolution C→C and global average pooling → logits of the attention branch,
    trained with their own cross-entropy (the branch's CAM-style supervision, Sec. 3.2);
  - attention map: a 1×1 convolution C→1, batch norm and a sigmoid → M(x) ∈ (0, 1)^{h×w};
* attention mechanism (Eq. 2): g'(x) = (1 + M(x)) · g(x) = M·g + g, fed to the perception branch;
* loss (Eq. 3): L = L_att + L_per, the sum of the two branches' cross-entropies.

The prediction is the perception branch's (``logits``); the attention branch's are ``aux_logits``.

Example:
    >>> net = ABNNet(ResNetConfig(num_classes=10, in_channels=1))
    >>> out = net(torch.rand(2, 1, 48, 48))
    >>> out.logits.shape, out.attention.shape
    (torch.Size([2, 10]), torch.Size([2, 24, 24]))

Deviations: the map's convolution is 1×1 as in the paper's text (the authors' code uses 3×3); the network
needs at least two stages (the last one is the perception branch). The attention lies at the resolution of
the feature extractor's output, twice that of the last stage, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from camrepro.models.attention_output import AttentionOutput
from camrepro.models.resnet_cifar import CifarResNet, ResNetConfig, init_weights, make_stage


class AttentionBranch(nn.Module):
    """ABN's attention branch: feature maps → (attention-branch logits [B, C], attention map [B, h, w])."""

    def __init__(self, config: ResNetConfig, in_channels: int):
        super().__init__()
        classes = config.num_classes
        self.stage = make_stage(config, in_channels, config.widths[-1], config.blocks[-1], stride=1)
        self.norm = nn.BatchNorm2d(config.out_channels)
        self.to_classes = nn.Sequential(nn.Conv2d(config.out_channels, classes, 1, bias=False),
                                        nn.BatchNorm2d(classes), nn.ReLU())
        self.class_conv = nn.Conv2d(classes, classes, 1, bias=False)
        self.map_conv = nn.Sequential(nn.Conv2d(classes, 1, 1, bias=False), nn.BatchNorm2d(1))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        class_maps = self.to_classes(self.norm(self.stage(features)))
        logits = self.class_conv(class_maps).mean(dim=(2, 3))
        attention = torch.sigmoid(self.map_conv(class_maps)).squeeze(1)
        return logits, attention


class ABNNet(nn.Module):
    """Feature extractor and perception branch from one :class:`CifarResNet`, plus an
    :class:`AttentionBranch`.

    ``forward`` returns :class:`AttentionOutput` (perception logits, attention [B, h, w] in (0, 1),
    ``aux_logits`` of the attention branch); ``training_loss`` is L_att + L_per.
    """

    kind = "abn"

    def __init__(self, config: ResNetConfig | None = None):
        super().__init__()
        self.backbone = CifarResNet(config)
        stages = len(self.backbone.config.widths)
        if stages < 2:
            raise ValueError("ABN needs a backbone with at least two stages (the last is the perception "
                             "branch)")
        config = self.backbone.config
        self.attention_branch = AttentionBranch(config, config.stage_channels(stages - 2))
        init_weights(self.attention_branch)

    @property
    def config(self) -> ResNetConfig:
        return self.backbone.config

    @property
    def normalize(self) -> nn.Module:
        return self.backbone.normalize

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def spec(self) -> dict[str, object]:
        return {"kind": self.kind, "config": self.config.to_dict()}

    def forward(self, images: torch.Tensor) -> AttentionOutput:
        stages = self.backbone.stages
        extracted = self.backbone.run_stages(self.backbone.stem(self.backbone.prepare(images)), stages[:-1])
        aux_logits, attention = self.attention_branch(extracted)
        refined = attention.unsqueeze(1) * extracted + extracted
        logits = self.backbone.classify(stages[-1](refined))
        return AttentionOutput(logits=logits, attention=attention, aux_logits=aux_logits)

    def training_loss(self, output: AttentionOutput, labels: torch.Tensor) -> torch.Tensor:
        """L = L_att + L_per (Fukui et al., Eq. 3)."""
        return F.cross_entropy(output.aux_logits, labels) + F.cross_entropy(output.logits, labels)
