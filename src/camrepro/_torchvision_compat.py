"""Make ``import torchvision`` work with a CPU build of torch.

torchvision 0.28.0 ships on PyPI only as a CUDA build. Its C extension cannot load next to the CPU build of
torch 2.13.0, and ``import torchvision`` then fails in ``torchvision/_meta_registrations.py`` with
"operator torchvision::nms does not exist", because that module registers fake kernels for operators whose
schemas the extension would have declared. Declaring those schemas ourselves, only when the extension is
absent, lets the pure-Python parts (models, transforms, datasets) import and work; calling a detection
operator such as ``nms`` still raises, which is the honest outcome. Where the extension loads (a CUDA
machine, or a matching CPU wheel) this module does nothing.
"""

from __future__ import annotations

import importlib.util
import os

import torch

# torchvision/_meta_registrations.py guards its other fake kernels with ``extension._has_ops()``, but
# registers these two unconditionally, so only their schemas are needed (torchvision/csrc/ops/nms.cpp,
# quantized/cpu/qnms_kernel.cpp).
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)

# Module-level handle: a torch.library.Library object unregisters its definitions when collected.
_LIBRARY: torch.library.Library | None = None


def _extension_loads() -> bool:
    """True when torchvision's compiled extension loads (then its own schemas exist)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.submodule_search_locations is None:
        return True  # torchvision absent: nothing to fix, and the import error will be the honest one
    pkg_dir = list(spec.submodule_search_locations)[0]
    candidates = [f for f in os.listdir(pkg_dir) if f.startswith("_C") and f.endswith((".so", ".pyd"))]
    if not candidates:
        return False
    try:
        torch.ops.load_library(os.path.join(pkg_dir, candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def ensure_torchvision_importable() -> bool:
    """Declare torchvision's operator schemas if its extension failed to load.

    Returns True when the schemas were declared by this function, False when nothing was needed.
    Idempotent and safe to call before or after ``import torchvision``.
    """
    global _LIBRARY
    if _LIBRARY is not None:
        return True
    if _extension_loads():
        return False
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _LIBRARY.define(schema)
    return True
