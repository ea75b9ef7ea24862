"""camrepro: LFI-CAM, LIFT-CAM, A-FMI and Opti-CAM, reimplemented and re-run in one PyTorch package."""

from camrepro._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

__version__ = "0.1.0"
