"""The map store: every saliency map computed once per build, whichever chapter asks for it first.

A map is identified by what determines it: the model (and the sha256 of a reader's own weights file), the
layer, the method and its options, the target class and the image's pixels (hashed), and the package's source
code (any change to the code that computes maps gives new keys). Maps, channel coefficients (for methods
that have them) and an all-zero flag are kept as one small ``.npz`` per image under
``data/results/maps/<model>/<layer>/<method>/``, written atomically (a temporary file renamed into place), so
an interrupted run leaves only complete entries. Each computation is
appended to ``computations.log`` beside them, which the book's build counts: a key computed twice in one
build is a missed share.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from camrepro import cache, models
from camrepro.methods.base import Explainer, normalize_maps, upsample

LOG = "computations.log"


def store_root() -> Path:
    return cache.results_root() / "maps"


def image_digest(image: torch.Tensor) -> str:
    """sha256 of an image's float32 pixels (CPU, contiguous) and shape: equal pixels, equal digest."""
    pixels = image.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(str(tuple(pixels.shape)).encode())
    digest.update(pixels.numpy().tobytes())
    return digest.hexdigest()[:24]


def method_key(model: str, layer: str | None, method: str, options: Mapping[str, object]) -> str:
    payload = json.dumps({"model": model, "layer": layer, "method": method,
                          "options": cache._canonical(dict(options))}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass
class StoredMaps:
    """Maps [N, H, W] in [0, 1] (float32, CPU), coefficients [N, K] or None, all-zero flags [N] and how
    many of the N were computed by this call (the rest were read from the store)."""

    maps: torch.Tensor
    weights: torch.Tensor | None
    all_zero: np.ndarray
    computed: int


class MapStore:
    """Maps of one explainer (one model, layer, method and options), read or computed per image."""

    def __init__(self, explainer: Explainer, model: str, method: str, options: Mapping[str, object] | None = None,
                 *, root: Path | None = None, code: str | None = None):
        self.explainer = explainer
        # A network loaded from a reader's own weights file is another model than the one its name denotes.
        digest = models.weights_of(explainer.model)
        if digest:
            model = f"{model}@{digest[:12]}"
        self.model, self.method = model, method
        self.layer = explainer.layer_name
        self.options = dict(options or {})
        self.code = code or cache.source_hash()
        self.root = root or store_root()
        self.folder = (self.root / model / str(self.layer or "input") /
                       f"{method}-{method_key(model, self.layer, method, self.options)}")

    def key(self, image: torch.Tensor, target: int) -> str:
        payload = f"{self.code}|{image_digest(image)}|{int(target)}"
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray | None, bool] | None:
        if not path.is_file():
            return None
        with np.load(path) as entry:
            weights = entry["weights"] if "weights" in entry.files else None
            return entry["map"], weights, bool(entry["all_zero"])

    def _write(self, path: Path, saliency: np.ndarray, weights: np.ndarray | None, all_zero: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.stem}-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                arrays = {"map": saliency, "all_zero": np.array(all_zero)}
                if weights is not None:
                    arrays["weights"] = weights
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with open(self.root / LOG, "a") as log:   # one line per computation
            log.write(f"{self.model}/{self.layer}/{self.folder.name}/{path.stem}\n")

    def get(self, images: torch.Tensor, targets: torch.Tensor | Sequence[int], *, chunk: int = 8,
            weights: bool = False) -> StoredMaps:
        """The maps of ``images`` for ``targets``: stored entries are read, the others computed in chunks of
        ``chunk`` images and stored. ``weights=True`` also returns the channel coefficients (an entry stored
        without them is recomputed)."""
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if targets.numel() != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {targets.numel()} targets")
        if weights and not self.explainer.has_weights:
            raise TypeError(f"{self.method} has no channel coefficients")
        paths = [self.folder / f"{self.key(img, int(t))}.npz" for img, t in zip(images, targets.tolist())]
        found = [self._read(p) for p in paths]
        missing = [i for i, f in enumerate(found) if f is None or (weights and f[1] is None)]
        for start in range(0, len(missing), chunk):
            index = missing[start:start + chunk]
            explanation = self.explainer.explain(images[index], targets[index].to(images.device))
            saliency = explanation.saliency.detach().float()
            flat_zero = (saliency.flatten(1).amax(1) <= 0).cpu().numpy()
            maps = normalize_maps(upsample(saliency, tuple(images.shape[-2:]))).cpu().numpy()
            coeffs = None if explanation.weights is None else explanation.weights.detach().float().cpu().numpy()
            for j, i in enumerate(index):
                w = None if coeffs is None else coeffs[j]
                self._write(paths[i], maps[j], w, bool(flat_zero[j]))
                found[i] = (maps[j], w, bool(flat_zero[j]))
        stacked = torch.from_numpy(np.stack([f[0] for f in found]))
        coefficients = (torch.from_numpy(np.stack([f[1] for f in found]))
                        if weights or all(f[1] is not None for f in found) else None)
        return StoredMaps(maps=stacked, weights=coefficients, all_zero=np.array([f[2] for f in found]),
                          computed=len(missing))


def build(name: str, net: torch.nn.Module, layer: str | None, options: Mapping[str, object] | None = None
          ) -> Explainer:
    """The registered method ``name`` on ``net`` with ``options``, at ``layer`` when the method explains a layer
    (pixel attributions take none)."""
    from camrepro import methods

    cls = methods.get(name)
    return cls(net, layer if cls.needs_layer else None, **dict(options or {}))


def store_for(name: str, net: torch.nn.Module, model: str, layer: str | None,
              options: Mapping[str, object] | None = None) -> MapStore:
    """A :class:`MapStore` of method ``name`` with ``options`` on ``net`` (called ``model``) at ``layer``."""
    return MapStore(build(name, net, layer, options), model, name, options)


def computation_counts(root: Path | None = None) -> dict[str, int]:
    """How many times each map was computed since the log was last cleared, by
    ``<model>/<layer>/<method>-<options hash>/<key>`` (1 everywhere: no map was computed twice)."""
    log = (root or store_root()) / LOG
    counts: dict[str, int] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            counts[line] = counts.get(line, 0) + 1
    return counts


def start_build(root: Path | None = None) -> None:
    """Begin a new count of computations (the whole book's build calls this first): the previous build's log
    is kept as ``computations.previous.log``."""
    log = (root or store_root()) / LOG
    if log.is_file():
        os.replace(log, log.with_name("computations.previous.log"))
