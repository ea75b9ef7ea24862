"""What produced a result: code version, parameters, package versions, hardware and time."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

SCHEMA_VERSION = 1

# The packages whose versions can change a number in the book.
TRACKED_PACKAGES = (
    "torch", "torchvision", "captum", "numpy", "scipy", "pandas", "scikit-image", "pillow",
    "efficientnet-lite-pytorch", "grad-cam", "papermill", "jupyter-book",
)


def repository_root() -> Path:
    """The compendium's root: $CAMREPRO_ROOT, else the checkout that holds this package, else the cwd."""
    env = os.environ.get("CAMREPRO_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "camrepro").is_dir():
            return parent
    return Path.cwd().resolve()


def git_state(root: Path | None = None) -> dict[str, object]:
    """Commit hash and whether the working tree differs from it (None where there is no git checkout)."""
    root = root or repository_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware(device: str | torch.device | None = None) -> dict[str, object]:
    """The machine and the device a computation ran on."""
    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device) if device is not None else "cpu",
    }
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def machine_load() -> dict[str, float | None]:
    """The load averages over 1, 5 and 15 minutes (None where the platform has none): how busy the machine
    was, which every time measured on it depends on."""
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return {"load_1min": None, "load_5min": None, "load_15min": None}
    return {"load_1min": round(one, 2), "load_5min": round(five, 2), "load_15min": round(fifteen, 2)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
