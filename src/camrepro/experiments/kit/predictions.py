"""What the networks predict on the chapters' images: classes, their probabilities, a tidy table."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from camrepro import models


@torch.no_grad()
def predict(net: nn.Module, images: torch.Tensor, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes [N], their softmax probabilities [N]) in chunks of ``chunk`` images."""
    classes, probs = [], []
    for i in range(0, images.shape[0], chunk):
        p = net(images[i:i + chunk]).float().softmax(1)
        conf, cls = p.max(1)
        classes.append(cls)
        probs.append(conf)
    return torch.cat(classes), torch.cat(probs)


def prediction_table(model: str, names: list[str], classes: torch.Tensor, probs: torch.Tensor) -> pd.DataFrame:
    """One row per image: model, image, class, class name (ImageNet), probability."""
    categories = models.imagenet_categories()
    cls = classes.tolist()
    return pd.DataFrame({"model": model, "image": names, "class": cls,
                         "class_name": [categories[c] if c < len(categories) else str(c) for c in cls],
                         "probability": probs.tolist()})
