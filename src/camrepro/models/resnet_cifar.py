"""A CIFAR-style residual network: the trainable backbone of the LFI-CAM chapter (plain, ABN and LFI-CAM).

One definition covers both scales of the chapter through :class:`ResNetConfig`:

* ``book`` scale: a narrow three-stage network of basic blocks on 48×48 grey canvases (widths 16-32-64, one
  block per stage: 8 weighted layers), small enough to train in seconds on two CPU cores;
* ``paper`` scale: ``ResNetConfig.resnet50_like()``, bottleneck blocks (3, 4, 6, 3) with widths 64-512
  (expansion 4), the ResNet-50 the LFI-CAM paper uses, with a CIFAR stem (3×3, stride 1) or an ImageNet stem
  (7×7 stride 2 and a max-pool) for larger images.

Architecture: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the CIFAR variant of
Sec. 4.2 uses a 3×3 stem and no max-pool; the first stage keeps the resolution, every later stage halves it
with a strided first block and a 1×1 projection shortcut).

Every network carries its mean/std normalisation as its first module (``net.normalize``), so it takes
[0, 1] pixel-space images and every mask or saliency map lives in pixel space. A network built for
``in_channels=3`` also accepts grey images [B, 1, H, W] (the grey channel is repeated, as an RGB view of a
grey image would be); any other channel count is a ValueError.

Deviations from the CIFAR ResNets of the paper's code: no in-place ReLU anywhere (so nothing after a hooked
layer can overwrite captured activations), and global pooling is adaptive so any input size works.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from camrepro.models.normalize import Normalize

BLOCKS = ("basic", "bottleneck")


def _positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    values = tuple(values)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {values!r}")
    return values


@dataclass(frozen=True)
class ResNetConfig:
    """Everything that defines a backbone (hashable, JSON-able through :meth:`to_dict`).

    Args:
        num_classes: outputs of the classifier.
        in_channels: 1 (grey) or 3 (RGB) input channels the stem expects.
        widths: base width of each stage (a bottleneck stage outputs 4× its width).
        blocks: residual blocks per stage (same length as ``widths``).
        block: "basic" (two 3×3 convolutions) or "bottleneck" (1×1, 3×3, 1×1; expansion 4).
        stem_kernel, stem_stride, stem_pool: the stem (3, 1, False for CIFAR; 7, 2, True for ImageNet).
        mean, std: per-channel normalisation of the first module (one value per input channel).
    """

    num_classes: int = 10
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 1, 1)
    block: str = "basic"
    stem_kernel: int = 3
    stem_stride: int = 1
    stem_pool: bool = False
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.25,))

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _positive_ints("widths", self.widths))
        object.__setattr__(self, "blocks", _positive_ints("blocks", self.blocks))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.widths) != len(self.blocks):
            raise ValueError(f"widths {self.widths} and blocks {self.blocks} must have the same length")
        classes = self.num_classes
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"num_classes must be an int ≥ 2, got {self.num_classes!r}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels!r}")
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.stem_kernel not in (3, 5, 7) or self.stem_stride not in (1, 2):
            raise ValueError(f"stem_kernel must be 3, 5 or 7 and stem_stride 1 or 2, got "
                             f"{self.stem_kernel!r}, {self.stem_stride!r}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError(f"mean {self.mean} and std {self.std} need one value per input channel "
                             f"({self.in_channels})")

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def out_channels(self) -> int:
        """Channels K of the last stage's feature maps."""
        return self.widths[-1] * self.expansion

    def stage_channels(self, stage: int) -> int:
        return self.widths[stage] * self.expansion

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> ResNetConfig:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown ResNetConfig fields {unknown}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @classmethod
    def resnet50_like(cls, num_classes: int = 10, in_channels: int = 3, imagenet_stem: bool = False,
                      mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
                      std: Sequence[float] = (0.2470, 0.2435, 0.2616)) -> ResNetConfig:
        """ResNet-50's stages (bottleneck blocks 3-4-6-3, widths 64-512): the paper's backbone."""
        return cls(num_classes=num_classes, in_channels=in_channels, widths=(64, 128, 256, 512),
                   blocks=(3, 4, 6, 3), block="bottleneck", stem_kernel=7 if imagenet_stem else 3,
                   stem_stride=2 if imagenet_stem else 1, stem_pool=imagenet_stem,
                   mean=tuple(mean), std=tuple(std))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn(cin, width, 3, stride)
        self.conv2 = _conv_bn(width, width, 3)
        self.shortcut = _conv_bn(cin, width, 1, stride) if stride != 1 or cin != width else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride), 1×1 expand (×4), with a projection shortcut when needed."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        out = width * self.expansion
        self.conv1 = _conv_bn(cin, width, 1)
        self.conv2 = _conv_bn(width, width, 3, stride)
        self.conv3 = _conv_bn(width, out, 1)
        self.shortcut = _conv_bn(cin, out, 1, stride) if stride != 1 or cin != out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(self.conv3(y) + self.shortcut(x))


def make_stage(config: ResNetConfig, cin: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` residual blocks of ``config.block``; the first one carries ``stride``."""
    block = Bottleneck if config.block == "bottleneck" else BasicBlock
    out = width * config.expansion
    return nn.Sequential(*[block(cin if i == 0 else out, width, stride if i == 0 else 1)
                           for i in range(blocks)])


def init_weights(module: nn.Module) -> None:
    """He initialisation of convolutions (fan-out, as in torchvision's ResNets), unit batch norms, zero
    biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


def match_channels(images: torch.Tensor, in_channels: int) -> torch.Tensor:
    """``images`` with ``in_channels`` channels: grey images are repeated for an RGB network; any other
    channel count is a ValueError."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor [B, C, H, W], got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape [B, C, H, W], got {tuple(images.shape)}")
    channels = images.shape[1]
    if channels == in_channels:
        return images
    if channels == 1 and in_channels == 3:
        return images.expand(-1, 3, -1, -1)
    raise ValueError(f"the network takes {in_channels}-channel images (or grey ones), "
                     f"got {channels} channels")


class CifarResNet(nn.Module):
    """The plain backbone: ``normalize`` → ``stem`` → ``layer1`` … ``layerN`` → average pool → ``fc``.

    ``forward`` returns logits [B, num_classes]; ``features`` the last stage's maps [B, K, h, w]. For
    Grad-CAM, explain :attr:`cam_layer` (``"layerN"``, the last stage: its tail is pool + fc, linear).

    Example:
        >>> net = CifarResNet(ResNetConfig(num_classes=10, in_channels=1))
        >>> net(torch.rand(2, 1, 48, 48)).shape
        torch.Size([2, 10])
    """

    kind = "plain"

    def __init__(self, config: ResNetConfig | None = None):
        super().__init__()
        config = config or ResNetConfig()
        if not isinstance(config, ResNetConfig):
            raise TypeError(f"config must be a ResNetConfig, got {type(config).__name__}")
        self.config = config
        self.normalize = Normalize(config.mean, config.std)
        stem = [nn.Conv2d(config.in_channels, config.widths[0], config.stem_kernel, stride=config.stem_stride,
                          padding=config.stem_kernel // 2, bias=False),
                nn.BatchNorm2d(config.widths[0]), nn.ReLU()]
        if config.stem_pool:
            stem.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        cin = config.widths[0]
        for i, (width, blocks) in enumerate(zip(config.widths, config.blocks)):
            self.add_module(f"layer{i + 1}", make_stage(config, cin, width, blocks, 1 if i == 0 else 2))
            cin = config.stage_channels(i)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(config.out_channels, config.num_classes)
        init_weights(self)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.config.widths))]

    @property
    def cam_layer(self) -> str:
        """Name of the last stage, the layer every CAM of this network explains."""
        return f"layer{len(self.config.widths)}"

    def spec(self) -> dict[str, object]:
        """What :func:`camrepro.training.build_network` needs to rebuild this network."""
        return {"kind": self.kind, "config": self.config.to_dict()}

    @property
    def accepted_channels(self) -> tuple[int, ...]:
        """The channel counts of the images this network takes (grey ones too for an RGB network); the
        methods and metrics check images against it (:func:`camrepro.tensors.check_fits_model`)."""
        return (1, 3) if self.config.in_channels == 3 else (self.config.in_channels,)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Channel-matched, normalised input (the output of the ``normalize`` module)."""
        return self.normalize(match_channels(images, self.config.in_channels))

    def pixels(self, normalized: torch.Tensor) -> torch.Tensor:
        """Pixel-space image back from the output of ``normalize`` (masks applied to that output included)."""
        return normalized * self.normalize.std + self.normalize.mean

    def run_stages(self, x: torch.Tensor, stages: Iterator[nn.Module] | Sequence[nn.Module]) -> torch.Tensor:
        for stage in stages:
            x = stage(x)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Last-stage feature maps [B, K, h, w] of pixel-space ``images``."""
        return self.run_stages(self.stem(self.prepare(images)), self.stages)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pool + fc: logits from feature maps."""
        return self.fc(torch.flatten(self.pool(features), 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))

    def training_loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits."""
        return F.cross_entropy(output, labels)
