"""Every explanation method by name: ``methods.get("lift-cam")(net, layer="features.18")(images, targets)``.

``REGISTRY`` maps each name to its class; a method's module is imported the first time it is looked up, so a
method's heavy dependency (captum) costs nothing until it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from camrepro.methods.base import Explainer, Explanation, normalize_maps, upsample

# name → "module:Class" (module relative to camrepro.methods)
_LOCATIONS: dict[str, str] = {
    # baselines
    "cam": "cam:CAM",
    "grad-cam": "grad_cam:GradCAM",
    "grad-cam++": "grad_cam_plusplus:GradCAMPlusPlus",
    "xgrad-cam": "xgrad_cam:XGradCAM",
    "layer-cam": "layer_cam:LayerCAM",
    "score-cam": "score_cam:ScoreCAM",
    "ablation-cam": "ablation_cam:AblationCAM",
    "fake-cam": "fake_cam:FakeCAM",
    "integrated-gradients": "pixel_attribution:IntegratedGradients",
    "deeplift": "pixel_attribution:DeepLift",
    # LIFT-CAM and the paper's other SHAP approximators
    "lift-cam": "lift_cam:LIFTCAM",
    "lrp-cam": "lrp_cam:LRPCAM",
    "lime-cam": "lime_cam:LIMECAM",
    # A-FMI
    "a-fmi": "a_fmi:AFMI",
    # Opti-CAM
    "opti-cam": "opti_cam:OptiCAM",
    # the attention map of a trainable attention network (LFI-CAM, ABN)
    "attention": "attention:AttentionMap",
}


class _Registry(Mapping[str, type[Explainer]]):
    """Read-only name → class mapping over the methods whose module is present."""

    def _available(self) -> list[str]:
        from importlib.util import find_spec

        return [n for n, loc in _LOCATIONS.items()
                if find_spec(f"{__name__}.{loc.split(':')[0]}") is not None]

    def __getitem__(self, name: str) -> type[Explainer]:
        if name not in _LOCATIONS:
            import difflib

            close = difflib.get_close_matches(name, list(_LOCATIONS), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"unknown method {name!r}{hint} Known: {', '.join(self)}")
        module_name, cls_name = _LOCATIONS[name].split(":")
        cls = getattr(importlib.import_module(f"{__name__}.{module_name}"), cls_name)
        if cls.name != name:
            raise RuntimeError(f"{cls.__qualname__}.name is {cls.name!r}, registered as {name!r}")
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(self._available())

    def __len__(self) -> int:
        return len(self._available())

    def __contains__(self, name: object) -> bool:
        return name in self._available()


REGISTRY = _Registry()


def get(name: str) -> type[Explainer]:
    """The method class registered as ``name`` (ValueError listing the known names otherwise)."""
    if not isinstance(name, str):
        raise TypeError(f"method name must be a string, got {type(name).__name__}")
    try:
        return REGISTRY[name]
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


__all__ = ["REGISTRY", "get", "Explainer", "Explanation", "normalize_maps", "upsample"]
