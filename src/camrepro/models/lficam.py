"""LFI-CAM: a classifier whose Feature Importance Network (FIN) weights the last stage's feature maps.

Paper: K. H. Lee, C. Park, J. Oh, N. Kwak, "LFI-CAM: Learning Feature Importance for Better Visual
Explanation", ICCV 2021, Sec. 3 (Fig. 2). With A ∈ R^{K×h×w} the last stage's feature maps of image x:

1. FIN input: each channel min-max normalised, Â_k = (A_k − min A_k) / (max A_k − min A_k), multiplied by
   the grey input resized to h×w, g: F_k = Â_k ⊙ g (the feature maps "masked" by the image, as Score-CAM
   masks the image by the maps, but in one forward pass);
2. FIN: four 3×3 convolutions K→K, each followed by batch norm (and ReLU except after the last), a global
   average pool and a softmax over the K channels: the feature importance w ∈ Δ^K;
3. attention: M = minmax(ReLU(Σ_k w_k A_k)) ∈ [0, 1]^{h×w};
4. attention mechanism: A' = M ⊙ A + A, then global average pool and fc; one cross-entropy loss, trained
   end to end (the FIN learns only through the classification loss).

Cost over the backbone: the FIN's four K→K 3×3 convolutions at the last stage's resolution (measured in the
chapter's throughput table), plus O(K·h·w) for the weighting.

Example:
    >>> net = LFICAMNet(ResNetConfig(num_classes=10, in_channels=1))
    >>> out = net(torch.rand(2, 1, 48, 48))
    >>> out.logits.shape, out.attention.shape, out.weights.shape
    (torch.Size([2, 10]), torch.Size([2, 12, 12]), torch.Size([2, 64]))

Deviations from the official code (``TrustworthyAI-kr/LFI-CAM``), each to follow the paper's description:

* the official forward detaches the attention (``.data``) after its min-max normalisation, so no gradient
  reaches the FIN and its weights never change from their initialisation; here every operation is
  out-of-place and differentiable, so the FIN is trained end to end as the paper says (tested);
* the official code min-max normalises the maps and the attention over the whole *batch*; here both are per
  image (per channel for the FIN input), so an image's attention does not depend on the other images of its
  batch (a batch gives the same maps as single images, as everywhere in camrepro);
* the official code returns ``None`` when the attention is constant; here a constant map becomes all zeros
  (an epsilon in the denominator), so A' = A and the network still classifies;
* the grey image is the channel mean of the pixel-space input recovered from the ``Normalize`` module's
  output (so a mask applied in either space reaches the FIN too), resized with antialiased bilinear
  interpolation; the official code averages the normalised input and resizes it without antialiasing;
* the FIN is four plain conv-BN(-ReLU) blocks K→K (the paper's description); the official CIFAR code uses
  residual blocks of the backbone's kind there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from camrepro.models.attention_output import AttentionOutput
from camrepro.models.resnet_cifar import CifarResNet, ResNetConfig, init_weights

EPS = 1e-8


def minmax_per_map(maps: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Min-max normalise every 2-D map of ``maps`` [..., h, w] to [0, 1], out of place (constant → 0)."""
    flat = maps.flatten(-2)
    lo = flat.min(dim=-1, keepdim=True).values.unsqueeze(-1)
    hi = flat.max(dim=-1, keepdim=True).values.unsqueeze(-1)
    return (maps - lo) / (hi - lo).clamp_min(eps)


def importance_attention(features: torch.Tensor, weights: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """LFI-CAM's attention M = minmax(ReLU(Σ_k w_k A_k)) [B, h, w] in [0, 1], from A [B, K, h, w] and
    w [B, K]."""
    if features.dim() != 4 or weights.dim() != 2 or weights.shape != features.shape[:2]:
        raise ValueError(f"features [B, K, h, w] and weights [B, K] do not match: {tuple(features.shape)}, "
                         f"{tuple(weights.shape)}")
    return minmax_per_map(torch.relu(torch.einsum("bk,bkhw->bhw", weights, features)), eps)


class FeatureImportanceNetwork(nn.Module):
    """The FIN: (min-max maps ⊙ grey image) → ``blocks`` × [conv 3×3 K→K, BN, ReLU (not after the
    last)] → global average pool → softmax over channels → importance w [B, K] (each row sums to 1)."""

    def __init__(self, channels: int, blocks: int = 4):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"blocks must be a positive int, got {blocks!r}")
        self.channels = channels
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                   for _ in range(blocks))
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(blocks))

    def inputs(self, features: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
        """F = Â ⊙ g: per-channel min-max maps times the grey image resized to the maps' size."""
        if grey.dim() != 4 or grey.shape[1] != 1 or grey.shape[0] != features.shape[0]:
            raise ValueError(f"grey must be [B, 1, H, W] for features {tuple(features.shape)}, "
                             f"got {tuple(grey.shape)}")
        size = tuple(features.shape[-2:])
        if tuple(grey.shape[-2:]) != size:
            grey = F.interpolate(grey, size=size, mode="bilinear", align_corners=False,
                                 antialias=grey.shape[-1] > size[-1] or grey.shape[-2] > size[-2])
        return minmax_per_map(features) * grey

    def forward(self, features: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4 or features.shape[1] != self.channels:
            raise ValueError(f"the FIN takes {self.channels}-channel feature maps [B, K, h, w], "
                             f"got {tuple(features.shape)}")
        x = self.inputs(features, grey)
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = norm(conv(x))
            if i < last:
                x = torch.relu(x)
        return torch.softmax(x.mean(dim=(2, 3)), dim=1)


class LFICAMNet(nn.Module):
    """Backbone (:class:`CifarResNet`) + FIN; ``forward`` returns :class:`AttentionOutput` (logits, attention
    [B, h, w] in [0, 1], FIN weights [B, K]). The backbone's own pool and fc classify the refined features.

    Its ``Normalize`` module is ``net.normalize`` (the backbone's, the first module to run).
    """

    kind = "lficam"

    def __init__(self, config: ResNetConfig | None = None, fin_blocks: int = 4):
        super().__init__()
        self.backbone = CifarResNet(config)
        self.fin = FeatureImportanceNetwork(self.backbone.config.out_channels, fin_blocks)
        init_weights(self.fin)

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
        return {"kind": self.kind, "config": self.config.to_dict(), "fin_blocks": len(self.fin.convs)}

    def forward(self, images: torch.Tensor) -> AttentionOutput:
        normalized = self.backbone.prepare(images)
        grey = self.backbone.pixels(normalized).mean(dim=1, keepdim=True)
        features = self.backbone.run_stages(self.backbone.stem(normalized), self.backbone.stages)
        weights = self.fin(features, grey)
        attention = importance_attention(features, weights)
        refined = attention.unsqueeze(1) * features + features
        return AttentionOutput(logits=self.backbone.classify(refined), attention=attention, weights=weights)

    def training_loss(self, output: AttentionOutput, labels: torch.Tensor) -> torch.Tensor:
        """The single cross-entropy loss of the paper."""
        return F.cross_entropy(output.logits, labels)
