"""Image transforms: PIL images to float tensors in [0, 1] pixel space.

No mean/std normalisation happens here: every network in camrepro carries its own normalisation as its first
module (``camrepro.models.normalize.Normalize``), so a mask applied to these tensors is a mask in pixel space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB float tensor [3,H,W] in [0,1] from any PIL image (grey, palette, RGBA, CMYK are converted)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def resize_shorter_side(image: Image.Image, shorter: int) -> Image.Image:
    """Bilinear resize so that the shorter side is ``shorter`` pixels, keeping the aspect ratio.

    The longer side is ``int(shorter * long / short)`` (truncated), as torchvision's ``Resize(int)`` has it.
    """
    if shorter <= 0:
        raise ValueError(f"shorter side must be positive, got {shorter}")
    width, height = image.size
    short, long = min(width, height), max(width, height)
    if short == shorter:
        return image
    new_long = int(shorter * long / short)
    size = (shorter, new_long) if width <= height else (new_long, shorter)
    return image.resize(size, Image.Resampling.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size``×``size`` square; offsets rounded as ``round((side - size) / 2)``."""
    width, height = image.size
    if size <= 0 or size > min(width, height):
        raise ValueError(f"crop size {size} does not fit an image of {width}×{height}")
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class ImagenetPreprocess:
    """The standard ImageNet evaluation transform without normalisation: resize the shorter side to
    ``round(256 / 224 · size)``, take the central ``size``×``size`` crop, convert to [3,size,size] in [0,1].

    A picklable callable (DataLoader workers can use it).
    """

    size: int = 224
    resize: int = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(f"size must be a positive int, got {self.size!r}")
        object.__setattr__(self, "resize", int(round(256 / 224 * self.size)))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
        image = image.convert("RGB")
        return pil_to_tensor(center_crop(resize_shorter_side(image, self.resize), self.size))


def imagenet_preprocess(size: int = 224) -> ImagenetPreprocess:
    """PIL image → float tensor [3,size,size] in [0,1] (resize shorter side to 256/224·size, centre crop)."""
    return ImagenetPreprocess(size)
