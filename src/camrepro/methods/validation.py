"""Input checks shared by every explanation method: images, targets and layers, each with a clear error.

The image and target checks live in :mod:`camrepro.tensors` (metrics and training use them too); they are
re-exported here under their old names. :func:`resolve_layer` is the methods' own.
"""

from __future__ import annotations

import difflib

from torch import nn

from camrepro.tensors import (  # noqa: F401  (re-exported)
    IMAGE_RANGE_TOLERANCE, TargetsLike, as_logits, check_fits_model, check_images, check_positive_int,
    check_target_range, parse_targets,
)


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """(dotted name, module) of ``layer`` inside ``model``; the error lists close names when it is unknown."""
    names = {module: name for name, module in model.named_modules()}
    if isinstance(layer, nn.Module):
        if layer not in names:
            raise ValueError(f"the given {type(layer).__name__} module is not a submodule of {type(model).__name__}")
        return names[layer], layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a dotted module name or an nn.Module, got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        close = difflib.get_close_matches(layer, [n for n in modules if n], n=5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{type(model).__name__} has no layer named {layer!r}{hint}")
    return layer, modules[layer]
