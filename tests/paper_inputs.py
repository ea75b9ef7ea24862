"""Tiny stand-ins for the inputs a reader provides at the ``paper`` profile, built in a temporary folder.

- :func:`imagenet_val` — a flat folder of small PNG photos and a ``<file> <label>`` labels file;
- :func:`image_folder_tree` — an ImageFolder tree ``<root>/<class>/<image>.png``;
- :func:`stand_in_weights` — random-weight state dicts of torchvision's ResNet-50 / VGG16 saved under a
  reader's own file names (float16, to halve their size: ``load_state_dict`` casts to the model's dtype).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import camrepro  # noqa: F401  (torchvision compat)


def _photo(rng: np.random.Generator, size: int) -> Image.Image:
    # A smooth random colour field plus a bright square: photos that differ from each other everywhere.
    base = rng.random((4, 4, 3))
    field = np.kron(base, np.ones((size // 4, size // 4, 1)))
    x0, y0 = rng.integers(0, size // 2, 2)
    field[y0:y0 + size // 3, x0:x0 + size // 3] = rng.random(3)
    return Image.fromarray((255 * field).astype(np.uint8))


def photos_tensor(folder: Path, size: int = 32) -> torch.Tensor:
    """The photos of ``folder`` as the chapters see them at ``size`` pixels ([N, 3, size, size] in [0, 1])."""
    from camrepro.data.transforms import imagenet_preprocess

    preprocess = imagenet_preprocess(size)
    images = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            images.append(preprocess(image))
    return torch.stack(images)


def imagenet_val(root: Path, n: int = 8, size: int = 48, seed: int = 0) -> tuple[Path, Path]:
    """``root/val`` with ``n`` photos and ``root/val_labels.txt`` labelling photo i with class 3·i."""
    rng = np.random.default_rng(seed)
    folder = root / "val"
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"ILSVRC2012_val_{i + 1:08d}.png"
        _photo(rng, size).save(folder / name)
        lines.append(f"{name} {3 * i}")
    labels = root / "val_labels.txt"
    labels.write_text("\n".join(lines) + "\n")
    return folder, labels


def image_folder_tree(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 4,
                      size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _photo(rng, size).save(root / name / f"{i:03d}.png")
    return root


def stand_in_weights(folder: Path, name: str, photos: torch.Tensor, seed: int = 0) -> Path:
    """Random weights of torchvision's ``name`` saved as ``folder/my-<name>.pth``.

    A randomly initialised network predicts one class for every photo (the logits are dominated by the
    classifier applied to the features' common part), and the grids need four predicted classes: so the last
    linear layer is made orthogonal to the mean feature of ``photos`` ([N, 3, H, W] in [0, 1]) and its bias
    zeroed, and the photos' differences decide the class.
    """
    import torchvision

    from camrepro.models.normalize import IMAGENET_MEAN, IMAGENET_STD

    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = getattr(torchvision.models, name)().eval()
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    features = []
    handle = last.register_forward_hook(lambda module, args, out: features.append(args[0].detach()))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        net((photos - mean) / std)
        handle.remove()
        common = features[0].mean(0)
        last.weight -= torch.outer(last.weight @ common, common) / common.dot(common)
        last.bias.zero_()
    path = folder / f"my-{name}.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, path)
    return path


def minimal_overrides(chapter: str, images: dict, weights: dict[str, str], train: Path, test: Path) -> dict:
    """Overrides of the ``paper`` profile's section of ``chapter`` that keep its models, methods, layers and
    protocol but bring every count to its minimum: photos, steps, iterations, epochs, seeds, rounds, and the
    photos of the methods that cost a network pass per channel (0: their maps are left out, as the schema
    allows; their code runs in the chapters' own tests and in the timing units here). ``images.n`` is 4 where
    a grid is built (four photos of four classes), and LFI-CAM's backbone keeps its depth and block type with
    narrower widths."""
    images = {**images, "size": 32}
    if chapter == "benchmark":
        # 64 px: at 32 px two of the first four photos share EfficientNet-Lite0's predicted class
        return {"images": {"n": 4, "size": 64}, "method_images": {"score-cam": 0, "ablation-cam": 0},
                "insertion_deletion": {"images": 1, "steps": 1},
                "grids": {"n": 1, "method_grids": {"score-cam": 0, "ablation-cam": 0}},
                "randomisation": {"images": 1, "method_images": {"score-cam": 0, "ablation-cam": 0}},
                "timing": {"batch": 2, "rounds": 1}, "examples": 1, "chunk": 4}
    if chapter == "opticam":
        return {"images": {**images, "n": 1}, "weights": weights,
                "method_images": {"score-cam": 0, "ablation-cam": 0},
                "optimisation": {"images": 1, "iterations": 1}, "snapshots": [0, 1],
                "insertion_deletion": {"images": 1, "steps": 1},
                "ablation": {"images": 1, "iterations": 1}, "protocol": {"images": 1},
                "timing": {"rounds": 0}, "examples": 1, "batch_size": 1}
    if chapter == "liftcam":
        return {"images": {**images, "n": 4}, "weights": weights,
                "method_images": {"score-cam": 0, "lime-cam": 0},
                "shap": {"images": 1, "permutations": 8}, "insertion_steps": 1, "grids": {"n": 1},
                "method_grids": {"score-cam": 0, "lime-cam": 0},
                "timing": {"rounds": 2, "slow_rounds": 1}, "chunk": 4, "examples": 1}
    if chapter == "afmi":
        return {"images": {**images, "n": 4}, "weights": weights, "chunk": 4,
                "method_options": {"a-fmi": {"steps": 1}, "integrated-gradients": {"steps": 2}},
                "references": {"names": ["zeros", "photo"]}, "insensitivity": {"images": 1},
                "faithfulness": {"insertion_steps": 1}, "grids": {"n": 1},
                "saturation": {"pool": 1, "images": 1, "temperatures": [4.0], "steps": 1,
                               "deletion_steps": 1}}
    if chapter == "lficam":
        return {"data": {"train_root": str(train), "test_root": str(test)},
                "model": {"widths": [8, 16, 32, 64]},
                "train": {"epochs": 1, "batch_size": 4, "milestones": [1]}, "seeds": [0],
                "stability": {"settings": [{}, {"lr": 0.05}], "n_images": 1},
                "evaluation": {"n_images": 1, "batch_size": 4}, "examples": 1,
                "throughput": {"batch_size": 2, "steps": 1, "warmup": 0}, "workers": 0}
    raise ValueError(f"no chapter {chapter!r}")
