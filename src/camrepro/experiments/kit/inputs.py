"""The files a chapter reads that the reader provides: checked all at once before any computing, and keyed
by their contents.

A chapter lists its inputs from its parameters (:func:`image_inputs`, :func:`weight_inputs`,
:func:`folder_input`); :func:`contents` checks that every one exists — raising one :class:`MissingInputs`
that names all that are missing, with what to put there — and returns their content fingerprints, which
the chapter adds to its units' parameters, so that an edited labels file, swapped images or other weights
recompute (:mod:`camrepro.data.fingerprint`). The packaged photos and weights are not listed: their names
and the package versions identify them, so their cache keys carry no fingerprint.

The ``weights`` parameter (:func:`weights_param`) lets a reader name their own state-dict file per model
(IMAGENET1K_V2, a fine-tuned network); its sha256 enters the cache keys and the manifests, and the map store
keys its maps by it (:func:`camrepro.models.weights_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from camrepro import models
from camrepro.data.fingerprint import file_sha256, folder_fingerprint
from camrepro.data.folders import IMAGE_EXTENSIONS
from camrepro.data.paths import user_path
from camrepro.experiments.schema import Param

KINDS = ("folder", "labels", "weights", "torchvision-weights")


@dataclass(frozen=True)
class Input:
    """One file or folder a chapter reads: the parameter that names it (``what``), where it resolves to, its
    kind (:data:`KINDS`) and what the reader should put there."""

    what: str
    path: Path
    kind: str
    hint: str

    def present(self) -> bool:
        return self.path.is_dir() if self.kind == "folder" else self.path.is_file()

    def fingerprint(self) -> dict[str, object]:
        if self.kind == "folder":
            return folder_fingerprint(self.path, IMAGE_EXTENSIONS)
        if self.kind == "torchvision-weights":
            # Verified against the sha256 prefix in its name when loaded: the name identifies the contents.
            return {"file": self.path.name}
        return {"file": self.path.name, "sha256": file_sha256(self.path)}


class MissingInputs(FileNotFoundError):
    """Inputs a chapter needs that are not there, all of them in one message."""

    def __init__(self, chapter: str, missing: list[Input]):
        self.missing = missing
        lines = [f"  - {i.what}: {i.path} does not exist; {i.hint}" for i in missing]
        super().__init__(f"the {chapter} chapter cannot start: {len(missing)} input(s) missing\n"
                         + "\n".join(lines))


def _check_weights(value: dict) -> str | None:
    unknown = sorted(set(value) - set(models.MODELS))
    if unknown:
        return f"names unknown model(s) {unknown}; the models are {sorted(models.MODELS)}"
    bad = sorted(k for k, v in value.items() if not isinstance(v, str) or not v)
    return f"the weights of {bad} must be file paths (strings)" if bad else None


def weights_param() -> Param:
    """The ``weights`` parameter: model → the reader's own state-dict file (absolute, or relative to the
    repository root); a model not listed loads its packaged or torchvision weights."""
    return Param({}, dict, check=_check_weights,
                 doc="model → the reader's own weights file (a state dict); default: the known weights")


def weights_for(params: Mapping[str, object], model_name: str) -> bool | str:
    """What :func:`camrepro.models.load` takes as ``weights`` for ``model_name`` under ``params``."""
    return params.get("weights", {}).get(model_name, True)


def image_inputs(section: Mapping[str, object], where: str = "images") -> list[Input]:
    """The folder (and labels file) of an ``images`` section with a folder source; none for packaged
    photos."""
    if section["source"] not in ("imagenet-val", "image-folder"):
        return []
    out = []
    if section["source"] == "imagenet-val":
        out.append(Input(f"{where}.root", user_path(section["root"]), "folder",
                         "put the validation images in it (flat, no sub-folders)"))
        out.append(Input(f"{where}.labels", user_path(section["labels"]), "labels",
                         "give one '<file name> <integer label>' line per image"))
    else:
        out.append(Input(f"{where}.root", user_path(section["root"]), "folder",
                         "put one sub-folder per class in it, each holding that class's images"))
    return out


def folder_input(what: str, value: str, hint: str) -> Input:
    """An image folder named by parameter ``what``."""
    return Input(what, user_path(value), "folder", hint)


def weight_inputs(model_names: Iterable[str], params: Mapping[str, object]) -> list[Input]:
    """The weights file of every model in ``model_names`` that is not packaged: the reader's own file where
    ``params["weights"]`` names one, else torchvision's file in ``$CAMREPRO_WEIGHTS``."""
    out, seen = [], set()
    own = params.get("weights", {})
    for name in model_names:
        if name in seen:
            continue
        seen.add(name)
        if name in own:
            out.append(Input(f"weights.{name}", user_path(own[name]), "weights",
                             f"save a state dict of torchvision's {name} there"))
        elif not models.MODELS[name].package:
            out.append(Input(f"weights.{name}", models.weights_folder() / models.MODELS[name].relative_path,
                             "torchvision-weights",
                             f"download torchvision's {models.MODELS[name].relative_path} on a machine with "
                             "internet and put it in $CAMREPRO_WEIGHTS, or name your own file in the "
                             f"weights parameter ({{{name}: path}})"))
    return out


def contents(chapter: str, inputs: Iterable[Input]) -> dict[str, dict[str, object]]:
    """Every input's content fingerprint by ``what``, after checking that all exist (one
    :class:`MissingInputs` naming every missing one)."""
    inputs = list(inputs)
    missing = [i for i in inputs if not i.present()]
    if missing:
        raise MissingInputs(chapter, missing)
    return {i.what: i.fingerprint() for i in inputs}


def keyed(params: Mapping[str, object], fingerprints: Mapping[str, object],
          model_name: str | None = None) -> dict[str, object]:
    """``params`` (a unit's) with the fingerprints it depends on under ``"inputs"``: the data, and the weights
    of ``model_name`` only (of every model when None). Unchanged when there are none (the packaged data's
    keys)."""
    chosen = {k: v for k, v in fingerprints.items()
              if not k.startswith("weights.") or model_name is None or k == f"weights.{model_name}"}
    return {**params, "inputs": chosen} if chosen else dict(params)
