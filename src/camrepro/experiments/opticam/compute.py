"""The opticam chapter's compute units.

- ``faithfulness-<model>`` (one per model): the target of each photo, every baseline's maps and Opti-CAM's
  (Mask objective, Range normalisation, pixel space; all through the map store), the per-photo AD, AI and AG
  with the mask applied in pixel space and in normalised space, insertion and deletion AUCs, Opti-CAM's
  objective trajectory and the per-photo scores of its map after t iterations (``snapshots``), example maps;
- ``ablation``: Opti-CAM with every objective × normalisation (the paper's Table 6) on one model; the Mask +
  Range row is the main run's snapshot at the ablation's iteration count when the main run has it;
- ``protocol``: Opti-CAM optimised with the mask applied to the normalised image (App. H, Table A.14);
- ``timing``: Opti-CAM, Score-CAM and a forward pass timed interleaved, call by call, on one photo.

Under torchrun the ``faithfulness-<model>`` units are split over the ranks by photo
(:func:`faithfulness_sharding`); ablation, protocol and timing run on rank 0 while the other ranks wait.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from camrepro import cache, models
from camrepro.experiments.chapter import Unit, cached_unit
from camrepro.experiments.kit import images as image_kit
from camrepro.experiments.kit import inputs as kit_inputs
from camrepro.experiments.kit import metric_tables, timing
from camrepro.experiments.kit.maps import MapStore, image_digest
from camrepro.experiments.kit.predictions import predict, prediction_table
from camrepro.experiments.sharding import Sharding
from camrepro.methods import get as get_method
from camrepro.methods.opti_cam import OptiCAM
from camrepro.experiments.opticam.params import OPTI, PROTOCOL_METHODS, layer, opticam_options
from camrepro.experiments.opticam.params import inputs as chapter_inputs

CHAPTER = "opticam"
SCORE = ["image", "p", "o", "AD", "AI", "AG"]


class RecordingOptiCAM(OptiCAM):
    """Opti-CAM that keeps, per (image, target), the objective's trajectory and the snapshots of each run, so
    that the map store's computations also give the iteration study (snapshots do not change the maps)."""

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        self.records: dict[tuple[str, int], dict[str, object]] = {}

    def explain(self, images: torch.Tensor, targets: object = None):  # noqa: D102 (OptiCAM.explain)
        record = super().explain(images, targets)
        for i in range(images.shape[0]):
            self.records[(image_digest(images[i]), int(record.targets[i]))] = {
                "objective": record.objective[i].numpy(),
                "snapshots": {t: s[i:i + 1].detach().cpu() for t, s in record.snapshots.items()}}
        return record


def _targets(net: torch.nn.Module, x: torch.Tensor, source: image_kit.ImageSet, how: str) -> torch.Tensor:
    classes, _ = predict(net, x)
    if how == "label":
        return torch.tensor(source.labels[:x.shape[0]], device=x.device)
    return classes


def _explainer(name: str, net: torch.nn.Module, layer_name: str, options: Mapping[str, object]):
    cls = get_method(name)
    return cls(net, layer_name if cls.needs_layer else None, **dict(options))


def _scores(net, x, maps, targets, names, space: str) -> pd.DataFrame:
    return metric_tables.faithfulness_rows(net, x, maps, targets, names, space=space).assign(space=space)


def _load(model_name: str, params: Mapping[str, object], device: str, positions=None):
    dev = torch.device(device)
    net, _ = models.load(model_name, weights=kit_inputs.weights_for(params, model_name), device=dev)
    source = image_kit.load(params["images"]).subset(positions)
    x = source.batch(0, source.count).to(dev)
    return net, source, x, _targets(net, x, source, params["targets"])


def _opticam_records(cam: RecordingOptiCAM, x: torch.Tensor, targets: torch.Tensor,
                     chunk: int) -> list[dict[str, object]]:
    """The records of ``x``: those the store's computations kept, the others recomputed (a store hit has none;
    the recomputed map equals the stored one, so the study does not depend on what the store held)."""
    keys = [(image_digest(img), int(t)) for img, t in zip(x, targets.tolist())]
    missing = [i for i, k in enumerate(keys) if k not in cam.records]
    for start in range(0, len(missing), chunk):
        index = missing[start:start + chunk]
        cam.explain(x[index], targets[index])
    return [cam.records[k] for k in keys]


def faithfulness(model_name: str, params: Mapping[str, object], device: str,
                 positions: Sequence[int] | None = None) -> dict[str, object]:
    """Every method's per-photo scores on ``model_name`` (see the module docstring), for the photos at
    ``positions`` (a rank's shard; None: all of them). A cap ("the first k photos") counts the unit's photos,
    so a shard explains those of its photos that are among the first k."""
    count = params["images"]["n"]
    net, source, x, targets = _load(model_name, params, device, positions)

    def first(cap: int) -> int:
        return image_kit.among_first(cap, positions, count)

    layer_name = layer(params, model_name)
    chunk = params["batch_size"]
    names = source.names
    _, probs = predict(net, x)
    predictions = prediction_table(model_name, names, targets.cpu(), probs.cpu())
    caps = {m: first(params["method_images"].get(m, count)) for m in params["baselines"]}
    caps[OPTI] = first(min(params["optimisation"]["images"], params["method_images"].get(OPTI, count)))
    id_spec = params["insertion_deletion"]
    n_examples = first(params["examples"])
    size = tuple(x.shape[-2:])

    scores, auc_rows, zeros = [], [], []
    examples: dict[str, np.ndarray] = {"images": x[:n_examples].cpu().numpy().astype(np.float16)}
    opti_options = opticam_options(params, **params["method_options"].get(OPTI, {}))
    cam = RecordingOptiCAM(net, layer_name, snapshots=params["snapshots"], **opti_options)
    for name in [*params["baselines"], OPTI]:
        k = caps[name]
        if k == 0:
            continue
        if name == OPTI:
            store = MapStore(cam, model_name, OPTI, opti_options)
        else:
            options = params["method_options"].get(name, {})
            store = MapStore(_explainer(name, net, layer_name, options), model_name, name, options)
        # Score-CAM-style methods cost a thousand forward passes per image: one image per call keeps memory flat
        stored = store.get(x[:k], targets[:k], chunk=1 if name in ("score-cam", "ablation-cam") else chunk)
        maps = stored.maps.to(x.device)
        for space in ("pixel", "normalized") if name in PROTOCOL_METHODS else ("pixel",):
            scores.append(_scores(net, x[:k], maps, targets[:k], names[:k], space).assign(method=name))
        zeros.append(pd.DataFrame({"method": name, "image": names[:k], "all_zero": stored.all_zero}))
        n_id = min(first(id_spec["images"]), k)
        if name in id_spec["methods"] and n_id:
            auc_rows.append(metric_tables.insertion_deletion_rows(
                net, x[:n_id], maps[:n_id], targets[:n_id], names[:n_id], steps=id_spec["steps"]).assign(
                    method=name))
        if n_examples:
            examples[name] = stored.maps[:n_examples].numpy().astype(np.float16)

    k = caps[OPTI]
    records = _opticam_records(cam, x[:k], targets[:k], chunk) if k else []
    snapshot_rows = []
    for t in sorted(params["snapshots"]):
        if not records:
            break
        saliency = torch.cat([r["snapshots"][t] for r in records]).to(x.device)
        maps = cam.mask(saliency, size)
        snapshot_rows.append(_scores(net, x[:k], maps, targets[:k], names[:k], "pixel").assign(iteration=t))
    objective = (np.stack([r["objective"] for r in records]) if records
                 else np.zeros((0, params["optimisation"]["iterations"] + 1)))
    return {
        "predictions": predictions,
        "scores": pd.concat(scores, ignore_index=True).assign(model=model_name),
        "all_zero": pd.concat(zeros, ignore_index=True).assign(model=model_name),
        "insertion_deletion": (pd.concat(auc_rows, ignore_index=True) if auc_rows else
                               pd.DataFrame(columns=["image", "insertion", "deletion", "method"])
                               ).assign(model=model_name),
        "iterations": (pd.concat(snapshot_rows, ignore_index=True) if snapshot_rows else
                       pd.DataFrame(columns=[*SCORE, "space", "iteration"])).assign(model=model_name),
        "trajectories": {"objective": objective, "images": np.array(names[:k])},
        "examples": examples,
    }


def _faithfulness_params(params: Mapping[str, object], model_name: str) -> dict[str, object]:
    keys = ("images", "targets", "layers", "baselines", "method_images", "method_options", "optimisation",
            "snapshots", "insertion_deletion", "examples", "batch_size")
    return kit_inputs.keyed({k: params[k] for k in keys} | {"model": model_name}, _fingerprints(params),
                            model_name)


def _fingerprints(params: Mapping[str, object]) -> dict[str, object]:
    return kit_inputs.contents(CHAPTER, chapter_inputs(params))


FAITHFULNESS_GROUPS = {"scores": ("method", "space"), "all_zero": ("method",), "insertion_deletion": ("method",),
                       "iterations": ("iteration",)}


def faithfulness_sharding(model_name: str, params: Mapping[str, object]) -> Sharding:
    """How the ``faithfulness-<model>`` unit splits its photos over the ranks of a torchrun launch.

    Deviations: Opti-CAM optimises a batch at once and its maps depend, in their last bits and where the
    optimisation is flat, on the batch they were computed in (see :class:`~camrepro.methods.opti_cam.OptiCAM`),
    so a sharded run's Opti-CAM rows match a one-process run's to a tolerance, not bitwise."""
    return Sharding(images=lambda: image_kit.load(params["images"]).names,
                    compute=lambda device, positions: faithfulness(model_name, params, device, positions),
                    groups=FAITHFULNESS_GROUPS, per_image_arrays=("trajectories", "examples"))


def main_result(params: Mapping[str, object], model_name: str, device: str) -> cache.Result:
    """The ``faithfulness-<model>`` unit's result (from the cache when the chapter computed it already)."""
    return cached_unit(CHAPTER, f"faithfulness-{model_name}", _faithfulness_params(params, model_name),
                       lambda dev: faithfulness(model_name, params, dev), device)


def _main_snapshot(params: Mapping[str, object]) -> bool:
    spec = params["ablation"]
    return (spec["model"] in params["models"] and spec["iterations"] in params["snapshots"]
            and spec["images"] <= params["optimisation"]["images"] and "mask" in spec["objectives"]
            and "range" in spec["normalizations"])


def ablation(params: Mapping[str, object], device: str) -> dict[str, object]:
    """Every objective × normalisation on the first ``ablation.images`` photos, ``ablation.iterations`` steps."""
    spec = params["ablation"]
    model_name, n = spec["model"], min(spec["images"], params["images"]["n"])
    rows = []
    reuse = _main_snapshot(params)
    if reuse and n:
        curve = main_result(params, model_name, device)["iterations"]
        first = curve[curve.iteration == spec["iterations"]].head(n)
        rows.append(first[SCORE].assign(objective="mask", normalization="range", reused=True))
    configs = [c for c in itertools.product(spec["objectives"], spec["normalizations"])
               if not (reuse and c == ("mask", "range"))]
    if n and configs:
        net, source, x, targets = _load(model_name, params, device)
        x, targets, names = x[:n], targets[:n], source.names[:n]
        for objective, normalization in configs:
            cam = OptiCAM(net, layer(params, model_name), iterations=spec["iterations"],
                          lr=params["optimisation"]["lr"], objective=objective, normalization=normalization)
            masks = []
            for start in range(0, n, params["batch_size"]):
                stop = min(start + params["batch_size"], n)
                record = cam.explain(x[start:stop], targets[start:stop])
                masks.append(cam.mask(record.saliency.detach(), tuple(x.shape[-2:])))
            table = metric_tables.faithfulness_rows(net, x, torch.cat(masks), targets, names)
            rows.append(table[SCORE].assign(objective=objective, normalization=normalization, reused=False))
    columns = [*SCORE, "objective", "normalization", "reused"]
    scores = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return {"scores": scores.assign(model=model_name, iterations=spec["iterations"])}


def protocol(params: Mapping[str, object], device: str) -> dict[str, object]:
    """Opti-CAM optimised with the mask on the normalised image (through the map store), scored both ways."""
    model_name = params["protocol"]["model"]
    n = min(params["protocol"]["images"], params["images"]["n"])
    if n == 0:
        return {"scores": pd.DataFrame(columns=[*SCORE, "space", "method", "optimised_in", "model"])}
    net, source, x, targets = _load(model_name, params, device)
    options = opticam_options(params, space="normalized")
    cam = OptiCAM(net, layer(params, model_name), **options)
    stored = MapStore(cam, model_name, OPTI, options).get(x[:n], targets[:n], chunk=params["batch_size"])
    maps = stored.maps.to(x.device)
    frames = [_scores(net, x[:n], maps, targets[:n], source.names[:n], space)
              for space in ("pixel", "normalized")]
    return {"scores": pd.concat(frames, ignore_index=True).assign(
        method=OPTI, optimised_in="normalized", model=model_name, all_zero=np.tile(stored.all_zero, 2))}


def timed(params: Mapping[str, object], device: str) -> dict[str, object]:
    """Seconds per photo of Opti-CAM (the main run's options), Score-CAM and a forward pass, interleaved."""
    spec = params["timing"]
    empty = {"times": pd.DataFrame(columns=["round", "call", "seconds", "load", "model"])}
    if not timing_possible(params):
        return empty
    model_name = spec["model"]
    net, _, x, targets = _load(model_name, params, device)
    x, targets = x[:1], targets[:1]
    layer_name = layer(params, model_name)
    opti = OptiCAM(net, layer_name, **opticam_options(params, **params["method_options"].get(OPTI, {})))
    score = _explainer("score-cam", net, layer_name, params["method_options"].get("score-cam", {}))

    def forward() -> None:
        with torch.no_grad():
            net(x)

    forward()   # the first call of a network pays one-off allocations; a forward pass is enough to absorb them
    calls = {OPTI: lambda: opti(x, targets), "score-cam": lambda: score(x, targets), "forward": forward}
    times = timing.interleaved(calls, rounds=spec["rounds"], device=x.device, warmup=False)
    return {"times": times.assign(model=model_name)}


def timing_possible(params: Mapping[str, object]) -> bool:
    """Whether the timing unit has anything to time (rounds, and Score-CAM among the baselines)."""
    return (params["timing"]["rounds"] > 0 and "score-cam" in params["baselines"]
            and params["method_images"].get("score-cam", 1) > 0)


def units(params: dict[str, object]) -> list[Unit]:
    """The chapter's units, each with the parameters its result depends on."""
    out = []
    for m in params["models"]:
        sharding = faithfulness_sharding(m, params)
        out.append(Unit(f"faithfulness-{m}", _faithfulness_params(params, m), sharding.whole, per_image=True,
                        sharding=sharding))
    shared = {k: params[k] for k in ("images", "targets", "layers", "optimisation", "batch_size")}
    fingerprints = _fingerprints(params)
    ablation_key = shared | {"ablation": params["ablation"], "reuse": _main_snapshot(params)}
    if _main_snapshot(params):
        ablation_key |= {"main": _faithfulness_params(params, params["ablation"]["model"])}
    out.append(Unit("ablation", kit_inputs.keyed(ablation_key, fingerprints, params["ablation"]["model"]),
                    lambda device: ablation(params, device)))
    out.append(Unit("protocol", kit_inputs.keyed(shared | {"protocol": params["protocol"]}, fingerprints,
                                                 params["protocol"]["model"]),
                    lambda device: protocol(params, device)))
    timing_key = shared | {k: params[k] for k in ("timing", "baselines", "method_images", "method_options")}
    out.append(Unit("timing", kit_inputs.keyed(timing_key, fingerprints, params["timing"]["model"]),
                    lambda device: timed(params, device)))
    return out
