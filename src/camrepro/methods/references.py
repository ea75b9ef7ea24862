"""Reference images x′ for explanations defined relative to a reference (A-FMI, integrated gradients,
DeepLIFT, LIFT-CAM with a non-zero reference).

A reference is either a name or an image:

- ``"zeros"``: a black image (all pixels 0 in [0, 1] pixel space);
- ``"mean"``: every pixel set to the image's own per-channel mean colour;
- ``"blur"``: the image blurred by a Gaussian of standard deviation ``blur_sigma`` pixels (window 2⌈3σ⌉ + 1,
  borders extended by replication, see :func:`camrepro.tensors.gaussian_blur`);
- ``"noise"``: uniform noise in [0, 1], drawn from a generator seeded with ``noise_seed``; one noise image is
  drawn per call and shared by every image of the batch, so an image's reference does not depend on which
  other images share its batch (and a batch gives the same references as a loop over single images);
- a tensor: another image in [0, 1], ``[B, C, H, W]`` (one reference per image) or ``[1, C, H, W]`` (one for
  all).

Every builder returns a float tensor ``[B, C, H, W]`` on the images' device and dtype, in [0, 1].
"""

from __future__ import annotations

import math

import torch

from camrepro.tensors import check_images, gaussian_blur

REFERENCE_NAMES = ("zeros", "mean", "blur", "noise")
# References that are the same whatever range the model's input takes (the zero input; the mean colour).
RANGE_FREE_REFERENCES = ("zeros", "mean")
DEFAULT_BLUR_SIGMA = 10.0

ReferenceLike = str | torch.Tensor


def check_reference(reference: object, *, check_range: bool = True) -> ReferenceLike:
    """Validate a reference before any image is seen: a known name, or a float image tensor in [0, 1].

    ``check_range=False`` (a method explaining a model that takes another input range) allows only the
    references that do not depend on the range, :data:`RANGE_FREE_REFERENCES`.

    Raises TypeError for a wrong type or dtype, ValueError for an unknown name, a wrong number of dimensions,
    an empty tensor, non-finite values or values outside [0, 1]. The shape is checked against the images
    later, by :func:`make_reference`.
    """
    if not check_range and not (isinstance(reference, str) and reference in RANGE_FREE_REFERENCES):
        raise ValueError(f"check_range=False works with the references {RANGE_FREE_REFERENCES} only; the "
                         "others are built in [0, 1] pixel space and need images in [0, 1]")
    if isinstance(reference, str):
        if reference not in REFERENCE_NAMES:
            raise ValueError(f"unknown reference {reference!r}; expected one of {REFERENCE_NAMES} or an "
                             "image tensor [B, C, H, W] in [0, 1]")
        return reference
    if not isinstance(reference, torch.Tensor):
        raise TypeError(f"reference must be one of {REFERENCE_NAMES} or an image tensor, "
                        f"got {type(reference).__name__}")
    if not reference.is_floating_point():
        raise TypeError(f"a reference image must be a floating-point tensor in [0, 1], "
                        f"got dtype {reference.dtype}")
    if reference.dim() != 4:
        hint = " (add a batch dimension with reference.unsqueeze(0))" if reference.dim() == 3 else ""
        raise ValueError(f"a reference image must have shape [B, C, H, W] or [1, C, H, W], "
                         f"got shape {tuple(reference.shape)}{hint}")
    if reference.numel() == 0:
        raise ValueError(f"the reference image is empty (shape {tuple(reference.shape)})")
    if not bool(torch.isfinite(reference).all()):
        raise ValueError("the reference image contains NaN or infinite values")
    low, high = float(reference.min()), float(reference.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"a reference image must lie in [0, 1] pixel space (the networks normalise inside), "
                         f"got values in [{low:.4g}, {high:.4g}]")
    return reference


def check_blur_sigma(sigma: object) -> float:
    if (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
            or not (math.isfinite(sigma) and sigma > 0)):
        raise ValueError(f"blur_sigma must be a positive number of pixels, got {sigma!r}")
    return float(sigma)


def check_noise_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"noise_seed must be an int, got {type(seed).__name__}")
    return seed


def zeros_reference(images: torch.Tensor) -> torch.Tensor:
    """A black image per image: all zeros."""
    return torch.zeros_like(check_images(images, unit_range=False))


def mean_reference(images: torch.Tensor) -> torch.Tensor:
    """Each image replaced by its own per-channel mean colour (a flat image of the average colour)."""
    images = check_images(images, unit_range=False)
    return images.mean(dim=(2, 3), keepdim=True).expand_as(images).clone()


def blur_reference(images: torch.Tensor, sigma: float = DEFAULT_BLUR_SIGMA) -> torch.Tensor:
    """Each image blurred by a Gaussian of standard deviation ``sigma`` px, truncated at 3σ (window
    2⌈3σ⌉ + 1)."""
    images = check_images(images)
    sigma = check_blur_sigma(sigma)
    return gaussian_blur(images, sigma, 2 * math.ceil(3 * sigma) + 1).clamp(0.0, 1.0)


def noise_reference(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform noise in [0, 1): one image of noise drawn on the CPU from ``seed`` (so it is the same on every
    device), shared by every image of the batch."""
    images = check_images(images)
    generator = torch.Generator().manual_seed(check_noise_seed(seed))
    noise = torch.rand((1, *images.shape[1:]), generator=generator, dtype=torch.float64)
    return noise.to(device=images.device, dtype=images.dtype).expand_as(images).clone()


def image_reference(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """A given reference image, [B, C, H, W] or [1, C, H, W], checked and broadcast to the images' batch."""
    images = check_images(images)
    reference = check_reference(reference)
    if not isinstance(reference, torch.Tensor):
        raise TypeError(f"image_reference needs a tensor, got the name {reference!r}")
    if reference.shape[1:] != images.shape[1:] or reference.shape[0] not in (1, images.shape[0]):
        rest = ", ".join(map(str, images.shape[1:]))
        raise ValueError(f"a reference of shape {tuple(reference.shape)} does not fit images of shape "
                         f"{tuple(images.shape)}; expected [{images.shape[0]}, {rest}] or [1, {rest}]")
    return reference.to(device=images.device, dtype=images.dtype).expand_as(images).clone()


def make_reference(images: torch.Tensor, reference: ReferenceLike = "zeros", *,
                   blur_sigma: float = DEFAULT_BLUR_SIGMA, noise_seed: int = 0) -> torch.Tensor:
    """The reference batch [B, C, H, W] for ``images`` (see the module docstring for the choices)."""
    reference = check_reference(reference)
    if isinstance(reference, torch.Tensor):
        return image_reference(images, reference)
    if reference == "zeros":
        return zeros_reference(images)
    if reference == "mean":
        return mean_reference(images)
    if reference == "blur":
        return blur_reference(images, blur_sigma)
    return noise_reference(images, noise_seed)
